"""ECAPA-TDNN on CPU runs in ONNX Runtime: same embeddings as PyTorch, one waveform at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diarq.shared.settings import load_settings

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def models():  # type: ignore[no-untyped-def]
    from diarq.worker.diarization.ecapa import EcapaEmbedding
    from diarq.worker.offline_models import offline_model_paths, prepare_offline_models

    settings = load_settings()
    prepare_offline_models(settings.model_dir)  # only verifies when already prepared
    weights = offline_model_paths(settings.model_dir).speaker_embedding
    return EcapaEmbedding(weights), EcapaEmbedding(weights, onnx=False)


@pytest.fixture(scope="module")
def pieces() -> list[np.ndarray]:
    """Real speech of different lengths (0.1 s to 8 s) from the three-speaker test file."""
    from diarq.worker.audio import decode_audio

    audio = decode_audio(DATA / "falcon_test.wav")
    return [audio[int(a * 16000):int((a + d) * 16000)]
            for a, d in [(1.0, 0.1), (2.0, 0.6), (4.0, 3.0), (8.0, 8.0)]]


def test_onnx_runtime_gives_pytorchs_embeddings(models, pieces) -> None:  # type: ignore[no-untyped-def]
    fast, reference = models
    assert fast.runtime == "onnxruntime" and reference.runtime == "torch"
    got = fast(pieces)
    want = np.concatenate([reference([p]) for p in pieces])  # PyTorch, unpadded
    assert got.shape == (len(pieces), 192)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # float32 kernels of two runtimes: ~1e-6 apart here; speakers are 0.1-0.5 apart
    assert np.abs(got - want).max() < 1e-3


def test_an_embedding_does_not_depend_on_the_rest_of_the_call(models, pieces) -> None:  # type: ignore[no-untyped-def]
    fast, _ = models
    together = fast(pieces)
    for i, p in enumerate(pieces):
        # PyTorch's padded batches moved embeddings by up to 0.07
        assert np.abs(fast([p])[0] - together[i]).max() < 1e-5


def test_without_onnx_ecapa_runs_in_pytorch(models, pieces, monkeypatch, caplog,  # type: ignore[no-untyped-def]
                                           tmp_path) -> None:
    """An install that lacks onnx (a GPU image, say) is slower on CPU, not broken."""
    import sys

    from diarq.worker.diarization.ecapa import EcapaEmbedding
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    weights = _weights_in(tmp_path)  # no kept graph there: it would need an export
    model = EcapaEmbedding(weights)
    assert model.runtime == "torch"
    assert "ECAPA runs in PyTorch" in caplog.text
    fast, _ = models
    assert np.abs(model(pieces[2:3]) - fast(pieces[2:3])).max() < 1e-3


def _weights_in(folder: Path) -> Path:
    """The ECAPA weights seen from another folder (a link), where graphs are kept apart."""
    from diarq.worker.offline_models import offline_model_paths

    link = folder / "ecapa.ckpt"
    link.symlink_to(offline_model_paths(load_settings().model_dir).speaker_embedding)
    return link


def test_the_exported_graph_is_kept_and_reused(models, pieces, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from diarq.worker.diarization import ecapa

    weights = _weights_in(tmp_path)
    first = ecapa.EcapaEmbedding(weights)
    kept = ecapa.onnx_path(weights)
    assert kept.parent == tmp_path and kept.is_file() and "torch-" in kept.name
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    def no_export(model):  # type: ignore[no-untyped-def]
        raise AssertionError("exported again although a good graph is kept")

    monkeypatch.setattr(ecapa, "_export", no_export)
    second = ecapa.EcapaEmbedding(weights)
    assert second.runtime == "onnxruntime"
    assert np.abs(second(pieces) - first(pieces)).max() < 1e-6


def test_a_kept_graph_that_does_not_match_is_exported_again(models, pieces, tmp_path,  # type: ignore[no-untyped-def]
                                                            caplog) -> None:
    import torch

    from diarq.worker.diarization import ecapa

    _, reference = models
    weights = _weights_in(tmp_path)
    kept = ecapa.onnx_path(weights)
    other = ecapa.EcapaEmbedding(weights, onnx=False)
    with torch.no_grad():  # another network: the same graph with other weights
        for p in other.model.parameters():
            p.mul_(1.1)
    for graph in (ecapa._export(other.model), b"not an onnx graph"):
        kept.write_bytes(graph)
        model = ecapa.EcapaEmbedding(weights)
        assert model.runtime == "onnxruntime"
        assert "does not match the weights" in caplog.text
        caplog.clear()
        want = np.concatenate([reference([p]) for p in pieces])
        assert np.abs(model(pieces) - want).max() < 1e-3
        assert kept.read_bytes() != graph  # replaced by the right one


def test_a_graph_that_cannot_be_kept_is_used_from_memory(models, pieces, tmp_path,  # type: ignore[no-untyped-def]
                                                         monkeypatch) -> None:
    from diarq.worker.diarization import ecapa

    fast, _ = models
    weights = _weights_in(tmp_path)
    nowhere = tmp_path / "missing-folder" / "ecapa.onnx"  # writing there fails
    monkeypatch.setattr(ecapa, "onnx_path", lambda w: nowhere)
    model = ecapa.EcapaEmbedding(weights)
    assert model.runtime == "onnxruntime" and not nowhere.exists()
    assert np.abs(model(pieces) - fast(pieces)).max() < 1e-6


def test_diarizer_and_voice_encoder_share_one_ecapa(tmp_path) -> None:
    from diarq.worker.diarization.ecapa import shared_ecapa
    from diarq.worker.voices import VoiceEncoder

    weights = _weights_in(tmp_path)
    model = shared_ecapa(weights)
    assert shared_ecapa(weights) is model
    assert VoiceEncoder(weights).model is model
