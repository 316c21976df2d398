"""Hugging Face hub failures -> ModelError codes a user can act on, token-free.

The token must never reach a message, a log line or an exception chain: the
ModelError is raised outside the ``except`` block that caught the library's
exception (so neither ``__cause__`` nor ``__context__`` refers to it), and
messages are built only from our own text plus the model id, then redacted
(shared/redact.py, with the token in use as one more secret).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from urllib.parse import unquote, urlparse

from diarq.shared.errors import DiarqError, ModelError
from diarq.shared.redact import redact

T = TypeVar("T")

_OFFLINE_HINT = (
    "set DIARQ_PROFILE=offline (tokenless models, run `diarq models prepare`) or point "
    "DIARQ_HUB_DIARIZATION_MODEL at a local directory holding the pipeline's config.yaml"
)


def repo_from_error(exc: BaseException) -> str | None:
    """The repo id of the request that failed (huggingface_hub errors carry the response,
    whose URL is ``<endpoint>/<owner>/<name>/resolve/...`` or ``.../api/models/<owner>/
    <name>/...``): a pipeline loads several repos, and the one that refused is the one
    the user must act on, not necessarily the configured pipeline."""
    for source in (getattr(exc, "response", None), getattr(exc, "request", None)):
        url = getattr(source, "url", None)
        if not isinstance(url, str) or not url:
            continue
        parts = [unquote(p) for p in urlparse(url).path.split("/") if p]
        if parts[:2] == ["api", "models"]:
            parts = parts[2:]
        elif parts[:1] == ["api"]:
            parts = parts[1:]
        if len(parts) >= 2 and (len(parts) == 2 or parts[2] in ("resolve", "revision",
                                                                  "tree", "blob")):
            return f"{parts[0]}/{parts[1]}"
    return None


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return int(status) if isinstance(status, int) else None


def classify(exc: BaseException, model: str, token: str | None) -> ModelError | None:
    """The ModelError for a failure while loading ``model`` from the hub; None if unknown.
    Messages name the repo of the failing request where the error carries it."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        import requests

        network: tuple[type[BaseException], ...] = (
            requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError,
        )
    except ImportError:  # pragma: no cover - requests comes with huggingface_hub 0.x
        network = (ConnectionError, TimeoutError)
    try:
        import httpx

        network += (httpx.TransportError,)
    except ImportError:  # pragma: no cover
        pass

    repo = repo_from_error(exc) or model
    url = f"https://hf.co/{repo}"
    needed_by = f" ({model} needs it)" if repo != model else ""
    status = _status(exc)
    if isinstance(exc, GatedRepoError) or (status == 403):
        return ModelError(
            f"access to the gated model {repo}{needed_by} is denied for this token: request "
            f"access at {url} and accept the conditions (with the account the token belongs "
            "to)",
            code="model_access_denied",
        )
    if status == 401:
        if token:
            return ModelError(
                "the Hugging Face token was rejected (401): create a valid read token at "
                "https://hf.co/settings/tokens and set HUGGINGFACE_HUB_TOKEN or HF_TOKEN",
                code="token_invalid",
            )
        return ModelError(
            f"{repo}{needed_by} needs a Hugging Face token: set HUGGINGFACE_HUB_TOKEN or "
            f"HF_TOKEN (and accept the conditions at {url})",
            code="token_missing",
        )
    # LocalEntryNotFoundError: not in the cache and the hub could not be reached
    if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled, *network)):
        return ModelError(
            f"the Hugging Face hub could not be reached to load {model}; check the network "
            f"or proxy, or {_OFFLINE_HINT}",
            code="hub_unreachable",
        )
    if isinstance(exc, RepositoryNotFoundError | RevisionNotFoundError | EntryNotFoundError
                  | HFValidationError) or status == 404:
        what = (f"{repo}, which {model} needs, was not found on the hub" if needed_by
                else f"diarization model {model} was not found on the hub")
        return ModelError(
            f"{what}: check DIARQ_HUB_DIARIZATION_MODEL (e.g. "
            "pyannote/speaker-diarization-3.1 or pyannote/speaker-diarization-community-1)",
            code="model_not_found",
        )
    if status is not None and status >= 500:
        return ModelError(
            f"the Hugging Face hub answered HTTP {status} while loading {model}; retry "
            f"later, or {_OFFLINE_HINT}",
            code="hub_unreachable",
        )
    return None


def call_hub(load: Callable[[], T], model: str, token: str | None) -> T:
    """Run ``load`` (which talks to the hub); turn its failures into token-free ModelErrors."""
    mapped: ModelError | None = None
    try:
        return load()
    except DiarqError:
        raise  # ours: already actionable and built from our own text
    except Exception as exc:  # noqa: BLE001 - every failure is mapped or wrapped below
        mapped = classify(exc, model, token)
        if mapped is None:
            # unknown failure: keep its type name only (its text may quote a URL
            # with credentials or the token itself)
            mapped = ModelError(
                f"loading diarization model {model} failed ({type(exc).__name__}); run "
                "`diarq doctor` for details",
                code="model_load_failed",
            )
    # raised here, outside the except block: no __context__ pointing at the original
    mapped.message = redact(mapped.message, extra_secrets=(token,) if token else ())
    mapped.args = (mapped.message,)
    raise mapped
