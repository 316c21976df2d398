"""pyproject.toml lists every package folder, mapped into the ``diarq`` import package
(tests/pipeline/test_wheel_install.py installs the wheel and runs it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_in_the_wheel() -> None:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = tool["package-dir"]
    folders = {str(p.parent.relative_to(ROOT)) for top in mapping.values()
               for p in (ROOT / top).rglob("__init__.py")}
    listed = set()
    for package in tool["packages"]:
        top = ".".join(package.split(".")[:2])
        rest = package.split(".")[2:]
        listed.add(str(Path(mapping[top], *rest)))
    assert folders == listed
    assert all(p.startswith("diarq.") for p in tool["packages"])
