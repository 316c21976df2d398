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


def test_without_onnx_ecapa_runs_in_pytorch(models, pieces, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    """An install that lacks onnx (a GPU image, say) is slower on CPU, not broken."""
    import sys

    from diarq.worker.diarization.ecapa import EcapaEmbedding
    from diarq.worker.offline_models import offline_model_paths

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    weights = offline_model_paths(load_settings().model_dir).speaker_embedding
    model = EcapaEmbedding(weights)
    assert model.runtime == "torch"
    assert "ECAPA runs in PyTorch" in caplog.text
    fast, _ = models
    assert np.abs(model(pieces[2:3]) - fast(pieces[2:3])).max() < 1e-3
