"""Package layering (DESIGN.md §1): imports run one way and never in a circle.

    cli -> api, worker, shared        api -> shared        worker -> shared
    shared -> nothing of ours         migrations -> shared

Every import statement counts, those inside functions too (a lazy import is still a
dependency). Installed, the folders are one import package, ``diarq.*``: no module
imports a generic top-level ``api``/``worker``/``shared``/``cli``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("api", "cli", "migrations", "shared", "worker")
ALLOWED = {
    "cli": {"cli", "api", "worker", "shared"},
    "api": {"api", "shared"},
    "worker": {"worker", "shared"},
    "shared": {"shared"},
    "migrations": {"migrations", "shared"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return "diarq." + ".".join(parts)


def _graph() -> dict[str, set[str]]:
    """module -> the diarq modules it imports (``from diarq.x import y`` counts as an
    import of diarq.x.y when that is a module, else of diarq.x)."""
    modules = {_module_name(p): p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    deps.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d.startswith("diarq.") and d != name}
    return graph


def _layer(module: str) -> str:
    return module.split(".")[1]


def test_imports_run_one_way() -> None:
    bad = sorted((m, d) for m, deps in _graph().items() for d in deps
                 if _layer(d) not in ALLOWED[_layer(m)])
    assert bad == []


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles() -> None:
    graph = _graph()
    # a package __init__ importing its own children is no cycle by itself (importing
    # diarq.x.y runs diarq.x first anyway); a child importing its package back is
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    assert find_cycles(edges) == []


def test_find_cycles_sees_the_old_registry_loop() -> None:
    edges = {"diarq.worker.registry": {"diarq.worker.diarization"},
             "diarq.worker.diarization": {"diarq.worker.registry", "diarq.shared.media"},
             "diarq.shared.media": set()}
    assert find_cycles(edges) == [["diarq.worker.diarization", "diarq.worker.registry"]]


def test_no_generic_top_level_imports() -> None:
    generic = set(ALLOWED)
    bad = []
    for folder in (*FOLDERS, "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                bad += [(str(path.relative_to(ROOT)), n) for n in names
                        if n.split(".")[0] in generic]
    assert bad == []
