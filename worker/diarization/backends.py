"""The two diarization backends, both pyannote.audio ``SpeakerDiarization`` pipelines:

* offline (default, no account): pyannote/segmentation v2 + GE2E embedding +
  our speaker-count clustering, from ``$DIARQ_MODEL_DIR/diarization`` (built by
  ``diarq models prepare``). Lower accuracy than the hub models; labelled so.
* hub: ``pyannote/speaker-diarization-3.1`` / ``-community-1`` with a token from
  the environment, or a local directory holding such a pipeline (air-gapped).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from diarq.shared.errors import ModelError
from diarq.shared.settings import Settings, hf_token_from_env
from diarq.shared.versions import package_version
from diarq.worker.diarization.diarizer import Diarizer
from diarq.worker.runtime import resolve_device


def load_offline_diarizer(settings: Settings) -> Diarizer:
    from diarq.worker.offline_models import offline_model_paths, require_offline_models

    require_offline_models(settings.model_dir, ["diarization"])
    config = offline_model_paths(settings.model_dir).diarization_config
    pipeline = _pipeline_from_config(config)
    info = {
        "backend": "pyannote.audio",
        "profile": "offline",
        "pipeline": "diarq offline SpeakerDiarization",
        "segmentation": "pyannote/segmentation v2 (PyanNet; weights from whisperx 3.8.6)",
        "embedding": "GE2E LSTM 256-d (weights from resemblyzer 0.1.4)",
        "clustering": pipeline.clustering.describe(),
        "pyannote.audio": package_version("pyannote.audio"),
        "accuracy": "lower (offline profile: older segmentation and embedding models than "
                    "pyannote/speaker-diarization-3.1; use DIARQ_PROFILE=hub for best results)",
    }
    return _finish(pipeline, info, settings)


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
    from diarq.worker.diarization.hub_errors import call_hub

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
        "pyannote.audio": package_version("pyannote.audio"),
        "accuracy": "standard (pyannote pretrained pipeline)",
    }
    return _finish(pipeline, info, settings)


def _from_pretrained(checkpoint: str | Path, token: str | None) -> Any:
    from pyannote.audio import Pipeline

    return Pipeline.from_pretrained(checkpoint, token=token)


def _finish(pipeline: Any, info: dict[str, Any], settings: Settings) -> Diarizer:
    device = resolve_device(settings.device)
    if device == "cuda":
        import torch

        pipeline.to(torch.device("cuda"))
    info["device"] = device
    return Diarizer(pipeline, info=info, threads=settings.threads)


def load_diarizer(settings: Settings) -> Diarizer:
    """The diarizer of the configured profile; ModelError with an actionable code if not."""
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    if settings.profile == "hub":
        return load_hub_diarizer(settings)
    return load_offline_diarizer(settings)
