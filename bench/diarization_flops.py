"""How much arithmetic the offline diarization's networks need, and how fast this CPU does it.

    .venv/bin/python bench/diarization_flops.py [--seconds 60]

Counts multiply-accumulates (MAC) of every convolution, linear layer and LSTM for one
second of audio (forward hooks on the PyTorch modules; activations, norms and the
feature front-ends are left out, so the counts are a floor), multiplies them by the
times each second passes through the network in the pipeline (the sliding windows
overlap), and times ECAPA and segmentation v2 in ONNX Runtime, as the pipeline runs
them, at 1 and 2 threads. The point: whether the diarization's time is in the
kernels (then a faster runtime helps) or in the arithmetic (then only fewer
operations do). BENCHMARKS.md, pipeline section.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def count_macs(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """MACs of one forward pass through ``model`` (Conv1d, Linear, LSTM layers)."""
    total = [0]

    def hook(mod: torch.nn.Module, _: object, out: object) -> None:
        if isinstance(mod, torch.nn.Conv1d):
            assert isinstance(out, torch.Tensor)
            total[0] += (out.shape[0] * out.shape[1] * out.shape[2]
                         * mod.in_channels // mod.groups * mod.kernel_size[0])
        elif isinstance(mod, torch.nn.Linear):
            assert isinstance(out, torch.Tensor)
            total[0] += out.numel() * mod.in_features
        elif isinstance(mod, torch.nn.LSTM):
            seq = out[0]  # type: ignore[index]
            batch, steps = (seq.shape[0], seq.shape[1]) if mod.batch_first else (
                seq.shape[1], seq.shape[0])
            d = 2 if mod.bidirectional else 1
            for layer in range(mod.num_layers):
                size = mod.input_size if layer == 0 else mod.hidden_size * d
                total[0] += d * batch * steps * 4 * mod.hidden_size * (size + mod.hidden_size)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.inference_mode():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="audio per timing (in 10 s waveforms / 5 s chunks)")
    args = parser.parse_args(argv)

    from pyannote.audio import Model

    from diarq.shared.settings import load_settings
    from diarq.worker.diarization.ecapa import EcapaEmbedding
    from diarq.worker.diarization.ge2e import GE2EEmbedding
    from diarq.worker.diarization.offline_pipeline import OVERLAP_STEP
    from diarq.worker.diarization.onnx_inference import OnnxInference

    models = load_settings(profile="offline").model_dir / "diarization"
    rng = np.random.default_rng(0)
    print("network          GMAC per s through it   passes per s of audio")

    ecapa = EcapaEmbedding(models / "speaker" / "ecapa.ckpt")
    wave = torch.from_numpy(0.1 * rng.standard_normal(160000).astype(np.float32))[None]
    feats = ecapa.norm(ecapa.features(wave), torch.ones(1))
    ecapa_gmac = count_macs(ecapa.model, feats, torch.ones(1)) / 10 / 1e9
    print(f"ECAPA            {ecapa_gmac:6.3f}                  the candidates' pooled speech "
          "(0.28-0.53 x audio in the suites)")

    ge2e = GE2EEmbedding(models / "embedding" / "ge2e.pt", onnx=False)
    mels = torch.zeros(1, 100, 40)
    ge2e_gmac = count_macs(ge2e.encoder, mels, torch.tensor([100])) / 1e9
    print(f"GE2E             {ge2e_gmac:6.3f}                  each local speaker's clean "
          "speech of every chunk")

    seg_model, seg_gmacs = {}, {}
    for name, step in (("segmentation", 0.25), ("overlap", OVERLAP_STEP)):
        model = Model.from_pretrained(str(models / name / "pytorch_model.bin")).eval()
        seconds = model.specifications.duration
        chunk = torch.zeros(1, 1, int(16000 * seconds))
        gmac = count_macs(model, chunk) / seconds / 1e9
        print(f"{name:16} {gmac:6.3f}                  {1 / step:.0f} (step {step:g} x chunk)")
        seg_model[name], seg_gmacs[name] = model, gmac

    print("\nthroughput in ONNX Runtime (GMAC/s; seconds per second of audio)")
    waves = [0.1 * rng.standard_normal(160000).astype(np.float32)
             for _ in range(max(1, int(args.seconds / 10)))]
    seg = seg_model["segmentation"]
    inference = OnnxInference(seg, models / "segmentation" / "pytorch_model.bin",
                              duration=5.0, step=1.25, skip_aggregation=True, batch_size=32)
    chunks = torch.from_numpy(0.1 * rng.standard_normal(
        (max(1, int(args.seconds / 5)), 1, 80000)).astype(np.float32))
    seg_gmac = seg_gmacs["segmentation"]
    ecapa(waves[:1])
    inference.infer(chunks[:2])
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t = time.perf_counter()
        ecapa(waves)
        e = (time.perf_counter() - t) / (10 * len(waves))
        t = time.perf_counter()
        for b in range(0, len(chunks), 32):
            inference.infer(chunks[b:b + 32])
        s = (time.perf_counter() - t) / (5 * len(chunks))
        print(f"{threads} thread(s): ECAPA {ecapa_gmac / e:5.1f} GMAC/s ({e:.4f} s/s), "
              f"segmentation v2 {seg_gmac / s:5.1f} GMAC/s ({s:.4f} s/s per pass)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
