"""The hub backend's loading code on pipelines shaped like pyannote/speaker-diarization-3.1
and -community-1 (real architectures, real segmentation-3.0 weights, seeded random
embedding and PLDA; tests/hub_shaped.py), with every network connection refused."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest

from diarq.shared.errors import ModelError
from diarq.shared.settings import load_settings
from diarq.worker.diarization import load_hub_diarizer
from tests import hub_shaped

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Any attempt to open a connection fails at once and is recorded."""
    attempts: list[object] = []

    def refuse(self, address, *args, **kwargs):  # type: ignore[no-untyped-def]  # noqa: ANN001
        attempts.append(address)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_TOKEN", raising=False)
    return attempts


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hub")
    hub_shaped.pipeline_31(root)
    hub_shaped.pipeline_community_1(root / "community-1")
    return root


@pytest.fixture(scope="module")
def jfk() -> np.ndarray:
    from diarq.worker.audio import decode_audio

    return decode_audio(ROOT / "tests" / "data" / "jfk.wav")


def _load(model: str | Path):  # noqa: ANN202
    return load_hub_diarizer(load_settings(profile="hub", hub_diarization_model=str(model),
                                           device="cpu"))


def test_31_directory_loads_without_plda_or_network(hub_root: Path, no_network: list,
                                                    jfk: np.ndarray) -> None:
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering

    from diarq.worker.diarization.hub_config import NoPLDA

    diarizer = _load(hub_root / "pyannote" / "speaker-diarization-3.1")
    assert no_network == []
    pipeline = diarizer.pipeline
    assert isinstance(pipeline._plda, NoPLDA)
    assert isinstance(pipeline.clustering, AgglomerativeClustering)
    assert type(pipeline._segmentation.model).__name__ == "PyanNet"
    assert pipeline._segmentation.model.specifications.powerset  # segmentation-3.0
    assert type(pipeline._embedding.model_).__name__ == "WeSpeakerResNet34"
    info = diarizer.describe()
    assert info["pipeline"] == "speaker-diarization-3.1" and info["profile"] == "hub"
    assert info["clustering"] == "AgglomerativeClustering"
    assert info["segmentation"] == "pyannote/segmentation-3.0"
    assert info["plda"].startswith("none")
    turns = diarizer.diarize(jfk)
    assert turns and all(t.speaker.startswith("SPEAKER_") for t in turns)
    assert no_network == []


def test_31_directory_missing_a_repo_fails_fast_naming_it(tmp_path: Path,
                                                         no_network: list) -> None:
    hub_shaped.pipeline_31(tmp_path)
    missing = tmp_path / "pyannote" / "segmentation-3.0" / "pytorch_model.bin"
    missing.unlink()
    t0 = time.monotonic()
    with pytest.raises(ModelError) as info:
        _load(tmp_path / "pyannote" / "speaker-diarization-3.1")
    assert time.monotonic() - t0 < 10  # no retries against an unreachable hub
    assert info.value.code == "model_not_found"
    assert "pyannote/segmentation-3.0" in info.value.message
    assert "huggingface-cli download pyannote/segmentation-3.0" in info.value.message
    assert no_network == []


def _into_hf_cache(cache: Path, repo: str, files: dict[str, Path | str]) -> None:
    """The layout `huggingface-cli download <repo>` writes into the cache."""
    base = cache / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snapshot = base / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, content in files.items():
        target = snapshot / name
        if isinstance(content, Path):
            target.write_bytes(content.read_bytes())
        else:
            target.write_text(content)


def test_31_hub_id_from_the_hf_cache_offline_without_token(
        hub_root: Path, tmp_path: Path, no_network: list,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    cache = tmp_path / "hub-cache"
    base = hub_root / "pyannote"
    _into_hf_cache(cache, "pyannote/speaker-diarization-3.1",
                   {"config.yaml": hub_shaped.CONFIG_31.format(extra="")})
    for repo in ("segmentation-3.0", "wespeaker-voxceleb-resnet34-LM"):
        _into_hf_cache(cache, f"pyannote/{repo}",
                       {"pytorch_model.bin": base / repo / "pytorch_model.bin"})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    diarizer = _load("pyannote/speaker-diarization-3.1")
    assert diarizer.describe()["pipeline"] == "pyannote/speaker-diarization-3.1"
    assert diarizer.describe()["plda"].startswith("none")
    assert no_network == []


def test_community_1_directory_loads_its_own_plda(hub_root: Path, no_network: list,
                                                 jfk: np.ndarray) -> None:
    from pyannote.audio.core.plda import PLDA
    from pyannote.audio.pipelines.clustering import VBxClustering

    from diarq.worker.diarization.hub_config import NoPLDA

    diarizer = _load(hub_root / "community-1")
    pipeline = diarizer.pipeline
    assert isinstance(pipeline._plda, PLDA) and not isinstance(pipeline._plda, NoPLDA)
    assert pipeline._plda.phi.shape == (hub_shaped.LDA_DIM,)
    assert isinstance(pipeline.clustering, VBxClustering)
    assert diarizer.describe()["plda"] == "$model/plda"  # the pipeline's own
    assert diarizer.diarize(jfk)
    assert no_network == []
