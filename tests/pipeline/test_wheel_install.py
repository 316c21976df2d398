"""diarq installed from its wheel, outside the checkout, works: the import package is
``diarq.*`` (no generic top-level names), migrations and the API spec ship as package
data, and data defaults to the working directory, not the source tree.

The fresh venv gets the wheel itself; its dependencies (torch, pyannote, ...) are
borrowed from the test venv through a .pth line rather than installed again (GBs):
the editable install's finder is not loaded that way, so only the wheel's copy of
diarq can be imported.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, f"{cmd[:3]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(dist), str(ROOT)], cwd=tmp_path, env=dict(os.environ))
    wheel = next(dist.glob("diarq-*.whl"))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv),
                                                          "platbase": str(venv)}))
    (purelib / "borrowed-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
          str(wheel)], cwd=tmp_path, env=dict(os.environ))

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "PYANNOTE_METRICS_ENABLED": "0", "DIARQ_MODEL_DIR": str(ROOT / "models")}
    where = _run([str(python), "-c", "import diarq.api, diarq.cli, diarq.worker; "
                  "print(diarq.api.__file__)"], cwd=work, env=env)
    assert str(purelib) in where and str(ROOT) not in where
    for generic in ("api", "worker", "shared", "cli"):
        probe = subprocess.run([str(python), "-c", f"import {generic}"], cwd=work, env=env,
                               capture_output=True, check=False)
        assert probe.returncode != 0, f"the install claims the top-level name {generic!r}"

    diarq = [str(venv / "bin" / "diarq")]  # the console script the wheel installs
    _run([*diarq, "db", "upgrade"], cwd=work, env=env)
    assert (work / "var" / "diarq.db").is_file()  # the working directory's var/
    out = _run([*diarq, "process", str(ROOT / "tests" / "data" / "falcon_test.wav"),
                "--format", "json"], cwd=work, env=env)
    result = json.loads(out)
    assert len(result["speakers"]) >= 2 and result["segments"]
    assert not list((purelib / "diarq").rglob("var"))  # nothing written into the install
    # the web app's templates and scripts ship as package data
    served = _run([str(python), "-c", (
        "from diarq.api import create_app\n"
        "from diarq.shared.settings import load_settings\n"
        "c = create_app({'DIARQ_SETTINGS': load_settings(auth='off')}).test_client()\n"
        "print([c.get(u).status_code for u in ('/', '/static/job.js', '/static/app.css')])")],
        cwd=work, env=env)
    assert served.strip() == "[200, 200, 200]"
