"""On CPU the offline segmentation passes and GE2E run in ONNX Runtime: PyTorch's outputs,
kept graphs (ECAPA: test_ecapa_runtime.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from diarq.shared.settings import load_settings

DATA = Path(__file__).resolve().parent.parent / "data"


def _weights(name: str) -> Path:
    from diarq.worker.offline_models import prepare_offline_models

    model_dir = load_settings().model_dir
    prepare_offline_models(model_dir)  # only verifies when already prepared
    return model_dir / "diarization" / name / "pytorch_model.bin"


def _inference(weights: Path, onnx: bool = True):  # type: ignore[no-untyped-def]
    from pyannote.audio.core.inference import Inference
    from pyannote.audio.core.model import Model

    from diarq.worker.diarization.onnx_inference import OnnxInference

    model = Model.from_pretrained(str(weights))
    duration = model.specifications.duration
    kw = {"duration": duration, "step": 0.25 * duration, "skip_aggregation": True}
    return OnnxInference(model, weights, **kw) if onnx else Inference(model, **kw)


@pytest.fixture(scope="module")
def recording() -> dict:
    import torch

    from diarq.worker.audio import decode_audio

    audio = decode_audio(DATA / "falcon_test.wav")  # three speakers, 17 s
    return {"waveform": torch.from_numpy(audio)[None], "sample_rate": 16000, "uri": "falcon"}


@pytest.mark.parametrize("name", ["segmentation", "overlap"])
def test_onnx_runtime_gives_pytorchs_segmentation(name, recording) -> None:  # type: ignore[no-untyped-def]
    """v2 (multilabel scores) and segmentation-3.0 (powerset, converted by pyannote)."""
    fast = _inference(_weights(name))
    assert fast.runtime == "onnxruntime"
    got, want = fast(recording), _inference(_weights(name), onnx=False)(recording)
    assert got.data.shape == want.data.shape and got.data.shape[0] >= 5
    assert got.sliding_window.step == want.sliding_window.step
    # two runtimes' float32 kernels: ~1e-4 apart on activations in [0, 1]
    assert np.abs(got.data - want.data).max() < 1e-2
    assert got.data.max() > 0.5  # there is speech: the comparison is not of zeros


def _linked(folder: Path, name: str) -> Path:
    """The weights seen from another folder (a link), where graphs are kept apart."""
    link = folder / "pytorch_model.bin"
    link.symlink_to(_weights(name))
    return link


def test_the_graph_is_kept_and_reused(tmp_path, recording, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from diarq.worker.diarization import onnx_inference
    from diarq.worker.diarization.onnx_graphs import graph_path

    weights = _linked(tmp_path, "segmentation")
    first = _inference(weights)
    assert graph_path(weights).is_file()

    def no_export(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("exported again although a good graph is kept")

    monkeypatch.setattr(onnx_inference, "export_graph", no_export)
    second = _inference(weights)
    assert second.runtime == "onnxruntime"
    assert np.abs(second(recording).data - first(recording).data).max() < 1e-6


def test_a_graph_of_other_weights_is_exported_again(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    from diarq.worker.diarization.onnx_graphs import graph_path

    (tmp_path / "v2").mkdir()
    (tmp_path / "v3").mkdir()
    v3 = _linked(tmp_path / "v3", "overlap")
    _inference(v3)  # segmentation-3.0's graph, kept beside its weights
    v2 = _linked(tmp_path / "v2", "segmentation")
    for graph in (graph_path(v3).read_bytes(), b"not an onnx graph"):
        graph_path(v2).write_bytes(graph)  # where v2's graph belongs
        model = _inference(v2)
        assert model.runtime == "onnxruntime"
        assert "does not match the weights" in caplog.text
        caplog.clear()
        assert graph_path(v2).read_bytes() != graph  # replaced by v2's own


def test_without_onnx_segmentation_runs_in_pytorch(tmp_path, recording, monkeypatch,  # type: ignore[no-untyped-def]
                                                  caplog) -> None:
    """An install that lacks onnx (a GPU image, say) is slower on CPU, not broken."""
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    model = _inference(_linked(tmp_path, "segmentation"))  # no kept graph there
    assert model.runtime == "torch"
    assert "segmentation runs in PyTorch" in caplog.text
    assert model(recording).data.max() > 0.5


def _ge2e(weights: Path, onnx: bool = True):  # type: ignore[no-untyped-def]
    from diarq.worker.diarization.ge2e import GE2EEmbedding

    return GE2EEmbedding(weights, onnx=onnx)


def _ge2e_weights(folder: Path | None = None) -> Path:
    from diarq.worker.offline_models import prepare_offline_models

    model_dir = load_settings().model_dir
    prepare_offline_models(model_dir)
    weights = model_dir / "diarization" / "embedding" / "ge2e.pt"
    if folder is None:
        return weights
    link = folder / "ge2e.pt"
    link.symlink_to(weights)
    return link


@pytest.fixture(scope="module")
def chunks(recording):  # type: ignore[no-untyped-def]
    """Four overlapping 5 s chunks of the recording with masks of different amounts of speech, as
    pyannote hands them to the embedding (one with too little speech: NaN)."""
    import torch

    wave = recording["waveform"][0]
    waves = torch.stack([wave[i * 40000:i * 40000 + 80000] for i in range(4)])[:, None]
    masks = torch.zeros(4, 293)
    masks[0] = 1
    masks[1, :150] = 1
    masks[2, 40:60] = 1
    masks[3, :2] = 1
    return waves, masks


def test_ge2e_in_onnx_runtime_gives_pytorchs_embeddings(chunks) -> None:  # type: ignore[no-untyped-def]
    fast, reference = _ge2e(_ge2e_weights()), _ge2e(_ge2e_weights(), onnx=False)
    assert fast.runtime == "onnxruntime" and reference.runtime == "torch"
    got, want = fast(*chunks), reference(*chunks)
    assert np.isnan(got[3]).all() and np.isnan(want[3]).all()
    assert np.allclose(np.linalg.norm(got[:3], axis=1), 1.0, atol=1e-5)
    # float32 kernels of two runtimes: ~1e-6 apart; speakers are 0.1-0.5 apart
    assert np.abs(got[:3] - want[:3]).max() < 1e-3


def test_ge2e_graph_is_kept_and_reused(tmp_path, chunks, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from diarq.worker.diarization import ge2e
    from diarq.worker.diarization.onnx_graphs import graph_path

    weights = _ge2e_weights(tmp_path)
    first = _ge2e(weights)
    assert graph_path(weights).is_file()

    def no_export(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("exported again although a good graph is kept")

    monkeypatch.setattr(ge2e, "export_graph", no_export)
    second = _ge2e(weights)
    assert second.runtime == "onnxruntime"
    assert np.abs(second(*chunks)[:3] - first(*chunks)[:3]).max() < 1e-6


def test_without_onnx_ge2e_runs_in_pytorch(tmp_path, chunks, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    model = _ge2e(_ge2e_weights(tmp_path))  # no kept graph there
    assert model.runtime == "torch"
    assert "GE2E runs in PyTorch" in caplog.text
    assert not np.isnan(model(*chunks)[:3]).any()


def test_a_session_runs_with_torchs_thread_count(chunks) -> None:  # type: ignore[no-untyped-def]
    """The worker gives torch one thread beside a transcription and all cores alone; the
    ONNX Runtime sessions follow it (one per count), with the same results."""
    import torch

    model = _ge2e(_ge2e_weights())
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = model(*chunks)
        torch.set_num_threads(2)
        two = model(*chunks)
    finally:
        torch.set_num_threads(before)
    assert {1, 2} <= set(model._session._sessions)
    assert np.abs(one[:3] - two[:3]).max() < 1e-5


def test_the_load_time_session_is_released(chunks) -> None:  # type: ignore[no-untyped-def]
    """The session made at load (to check the kept graph) is dropped: beside a
    transcription the network runs on one thread, and a session for another count would
    hold its weights for nothing. A run makes the session for its own thread count."""
    import torch

    model = _ge2e(_ge2e_weights())
    assert model._session._sessions == {}
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        model(*chunks)
    finally:
        torch.set_num_threads(before)
    assert set(model._session._sessions) == {1}
