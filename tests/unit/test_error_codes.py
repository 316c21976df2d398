"""One catalogue of error codes (shared/error_codes.py): every code the source can raise,
answer or store is in it, and docs/errors.md is generated from it."""

from __future__ import annotations

import ast
from pathlib import Path

from diarq.shared.error_codes import CATALOGUE, markdown

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "worker", "shared", "cli")


def _strings(node: ast.AST) -> list[str]:
    """The code strings an expression can evaluate to: a literal, either branch of
    ``a if c else b``, the operands of ``a or b``, the default of ``d.get(k, default)``,
    the values of a dict literal."""
    if isinstance(node, ast.Constant):
        return [node.value] if isinstance(node.value, str) else []
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    if isinstance(node, ast.BoolOp):
        return [s for v in node.values for s in _strings(v)]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and node.func.attr == "get" and len(node.args) == 2:
        return _strings(node.args[1])
    if isinstance(node, ast.Dict):
        return [s for v in node.values for s in _strings(v)]
    return []


def codes_in_source() -> dict[str, str]:
    """Code strings by the place they first appear: ``code=...`` arguments, ``code = ...``
    assignments (class defaults, local choices), the code argument of ``error_response``
    and ``too_many``, and module constants named ``*_CODE`` / ``*_CODES``."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                values: list[str] = []
                if isinstance(node, ast.Call):
                    values += [s for kw in node.keywords if kw.arg == "code"
                               for s in _strings(kw.value)]
                    func = node.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    if name == "error_response" and len(node.args) > 1:
                        values += _strings(node.args[1])
                    if name == "too_many" and node.args:
                        values += _strings(node.args[0])
                elif isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name) and (
                                target.id == "code" or target.id.endswith(("_CODE", "_CODES"))):
                            values += _strings(node.value)
                for value in values:
                    found.setdefault(value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_scanner_finds_codes() -> None:
    # the scan must see the ways codes are written, or the next test proves nothing
    found = codes_in_source()
    for known in ("audio_truncated", "unauthorized", "rate_limited", "timeout",
                  "worker_lost", "not_found", "offline_model_missing", "config_invalid"):
        assert known in found, known
    assert len(found) >= 50


def test_every_code_in_source_is_catalogued() -> None:
    missing = {code: where for code, where in codes_in_source().items()
               if code not in CATALOGUE}
    assert missing == {}, "add these to shared/error_codes.py"


def test_catalogue_entries_say_what_to_do() -> None:
    for entry in CATALOGUE.values():
        assert entry.code.isidentifier() and entry.code == entry.code.lower()
        assert entry.meaning and entry.action, entry.code
        assert entry.status is None or 400 <= entry.status < 600, entry.code


def test_docs_page_is_generated_from_catalogue() -> None:
    page = (ROOT / "docs" / "errors.md").read_text()
    assert page == markdown(), "regenerate: python -m diarq.shared.error_codes > docs/errors.md"


def test_every_failed_job_code_has_an_http_status() -> None:
    # POST /api/diarize waits for its job and answers a failure with the job's code
    from diarq.shared.error_codes import JOB

    missing = [c.code for c in CATALOGUE.values() if JOB in c.seen and c.status is None]
    assert missing == []
