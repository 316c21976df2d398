"""A hub pipeline's ``config.yaml``, prepared for pyannote.audio 4 without the repos it
does not need.

pyannote.audio 4's ``SpeakerDiarization.__init__`` always loads a PLDA, by default from
the gated ``pyannote/speaker-diarization-community-1`` repo, although only VBx clustering
uses it (pyannote/pyannote-audio#2044): ``pyannote/speaker-diarization-3.1``
(AgglomerativeClustering) then needs a third gated repo, and an air-gapped 3.1 directory
tries to reach the hub. We read the config ourselves and hand pyannote the result as a
dict (``Pipeline.from_pretrained`` accepts one), with:

* ``$model/<sub>`` entries expanded by pyannote's own ``expand_subfolders``;
* a :class:`NoPLDA` for every clustering other than VBx (community-1 keeps its own
  ``$model/plda``);
* for a local directory, every hub id the config names (3.1:
  ``pyannote/segmentation-3.0``, ``pyannote/wespeaker-voxceleb-resnet34-LM``) resolved
  to local files, next to the pipeline (``<root>/<owner>/<name>/``, as
  ``huggingface-cli download <repo> --local-dir <root>/<repo>`` writes it) or in the
  Hugging Face cache, so loading never touches the network; a missing one fails at once
  with the command that fetches it.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from pyannote.audio.core.plda import PLDA

from diarq.shared.errors import ModelError

CONFIG_FILE = "config.yaml"
MODEL_FILE = "pytorch_model.bin"  # pyannote's AssetFileName.Model
VBX = "VBxClustering"
# the parameters of pyannote's SpeakerDiarization that name other repos or files
MODEL_PARAMS = ("segmentation", "embedding")
PLDA_PARAM = "plda"
# SpeakerDiarization's default PLDA (when the config names none and clusters with VBx)
DEFAULT_PLDA_REPO = "pyannote/speaker-diarization-community-1"

# What the known pipelines need on the hub (from their config.yaml), for `diarq doctor`
# when the config itself cannot be read; "gated": the account must accept conditions.
KNOWN_PIPELINES: dict[str, tuple[str, ...]] = {
    "pyannote/speaker-diarization-3.1": (
        "pyannote/speaker-diarization-3.1",
        "pyannote/segmentation-3.0",
        "pyannote/wespeaker-voxceleb-resnet34-LM",
    ),
    "pyannote/speaker-diarization-community-1": ("pyannote/speaker-diarization-community-1",),
}
GATED = frozenset({
    "pyannote/speaker-diarization-3.1",
    "pyannote/segmentation-3.0",
    "pyannote/speaker-diarization-community-1",
})

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class NoPLDA(PLDA):
    """The PLDA of a pipeline whose clustering never uses one (everything but VBx):
    pyannote's ``get_plda`` passes a PLDA instance through, so nothing is loaded."""

    def __init__(self) -> None:  # noqa: D107 - deliberately loads nothing
        pass

    def __call__(self, embeddings: Any) -> Any:
        raise RuntimeError("this pipeline has no PLDA: only VBxClustering uses one")


def looks_like_repo_id(value: object) -> bool:
    """``owner/name`` as the hub spells it (not a path, not ``$model/...``)."""
    return isinstance(value, str) and bool(_REPO_ID.match(value)) and not value.startswith(
        ("$", ".", "/", "~"))


def pipeline_params(config: dict[str, Any]) -> dict[str, Any]:
    pipeline = config.get("pipeline")
    if not isinstance(pipeline, dict) or "name" not in pipeline:
        raise ModelError(
            "the diarization config.yaml has no pipeline.name: point "
            "DIARQ_HUB_DIARIZATION_MODEL at a pyannote pipeline (its config.yaml)",
            code="model_not_found",
        )
    params = pipeline.setdefault("params", {})
    if not isinstance(params, dict):
        raise ModelError("the diarization config.yaml has invalid pipeline.params",
                         code="model_not_found")
    return params


def clustering_of(config: dict[str, Any]) -> str:
    """The clustering class name (pyannote's default is VBx)."""
    return str(pipeline_params(config).get("clustering", VBX))


def needs_plda(config: dict[str, Any]) -> bool:
    return clustering_of(config) == VBX


def hub_references(config: dict[str, Any]) -> list[str]:
    """Other hub repos the config names (3.1: its segmentation and embedding models)."""
    params = pipeline_params(config)
    refs = [str(params[k]) for k in (*MODEL_PARAMS, PLDA_PARAM)
            if looks_like_repo_id(params.get(k))]
    if needs_plda(config) and PLDA_PARAM not in params:
        refs.append(DEFAULT_PLDA_REPO)
    return list(dict.fromkeys(refs))


def required_repos(model_id: str, config: dict[str, Any] | None) -> list[str]:
    """Every hub repo loading ``model_id`` needs, the pipeline's own first: from its
    config when known, else from KNOWN_PIPELINES."""
    if config is None:
        return list(KNOWN_PIPELINES.get(model_id, (model_id,)))
    return list(dict.fromkeys([model_id, *hub_references(config)]))


def local_candidates(root: Path, repo: str, filename: str = MODEL_FILE) -> list[Path]:
    """Where a repo named by a local pipeline may lie: beside the pipeline's directory,
    as ``huggingface-cli download <repo> --local-dir <root>/<repo>`` writes it
    (``<root>/<owner>/<name>``; also ``<root>/<name>``)."""
    owner, name = repo.split("/", 1)
    return [root.parent.parent / owner / name / filename, root.parent / name / filename]


def _cached(repo: str, filename: str, cache_dir: str | Path | None) -> Path | None:
    """The file in the Hugging Face cache (``huggingface-cli download <repo>``), without
    any network access."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=cache_dir)
    return Path(found) if isinstance(found, str) else None


def resolve_local(repo: str, root: Path, cache_dir: str | Path | None = None,
                  filename: str = MODEL_FILE) -> Path:
    """A local copy of ``repo``'s ``filename`` for the pipeline in ``root``; ModelError
    (model_not_found, saying where to put it) when there is none."""
    candidates = local_candidates(root, repo, filename)
    for path in candidates:
        if path.is_file():
            return path
    cached = _cached(repo, filename, cache_dir)
    if cached is not None and cached.is_file():
        return cached
    raise ModelError(
        f"the pipeline in {root.name}/ uses {repo}, which is not on this machine: download "
        f"it next to the pipeline (`huggingface-cli download {repo} --local-dir "
        f"{candidates[0].parent}`, after accepting its conditions at https://hf.co/{repo}) "
        "or into the Hugging Face cache",
        code="model_not_found",
    )


def prepare(config: dict[str, Any], *, model_id: str | Path, token: str | None,
            cache_dir: str | Path | None = None, local_root: Path | None = None) -> dict[str, Any]:
    """The config dict to give ``Pipeline.from_pretrained`` (module docstring). The input
    is not modified."""
    from pyannote.audio.core.pipeline import expand_subfolders

    config = copy.deepcopy(config)
    expand_subfolders(config, model_id, token=token, cache_dir=cache_dir)
    params = pipeline_params(config)
    if local_root is not None:
        for key in MODEL_PARAMS:
            if looks_like_repo_id(params.get(key)):
                # a dict, not a path string: pyannote picks the embedding's loader from
                # words in a string ("wespeaker" -> ONNX), a dict always means pyannote
                params[key] = {"checkpoint": str(resolve_local(params[key], local_root,
                                                               cache_dir))}
        plda = params.get(PLDA_PARAM)
        if looks_like_repo_id(plda):
            params[PLDA_PARAM] = str(resolve_local(str(plda), local_root, cache_dir,
                                                   "plda.npz").parent)
    if not needs_plda(config) and PLDA_PARAM not in params:
        params[PLDA_PARAM] = NoPLDA()
    return config


def describe(config: dict[str, Any]) -> dict[str, str]:
    """What a result's ``models.diarization`` says about the pipeline's parts."""
    params = pipeline_params(config)

    def name(value: object, fallback: str) -> str:
        if isinstance(value, str):
            return value if not value.startswith("/") else Path(value).name
        return fallback

    info = {
        "pipeline_class": str(config["pipeline"]["name"]),
        "clustering": clustering_of(config),
        "segmentation": name(params.get("segmentation"), "default"),
        "embedding": name(params.get("embedding"), "default"),
    }
    if needs_plda(config):
        info["plda"] = name(params.get(PLDA_PARAM), DEFAULT_PLDA_REPO)
    else:
        info["plda"] = f"none ({info['clustering']} uses none)"
    return info
