"""Package layering (DESIGN.md §1): the worker never imports the API package, and the
API never imports the CLI; what both need (serialisation) lives in shared/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(package: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append((str(path.relative_to(ROOT)), node.module))
            elif isinstance(node, ast.Import):
                found.extend((str(path.relative_to(ROOT)), a.name) for a in node.names)
    return found


@pytest.mark.parametrize("package, forbidden", [("worker", "api"), ("api", "shared.cli")])
def test_no_import_across_layers(package: str, forbidden: str) -> None:
    bad = [(f, m) for f, m in _imports(package)
           if m == forbidden or m.startswith(forbidden + ".")]
    assert bad == []
