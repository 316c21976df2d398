"""A CPU worker that transcribes beside its diarization lets idle OpenMP threads sleep.

OpenMP reads OMP_WAIT_POLICY when its library loads, so ``import diarq.worker`` sets it
before anything imports torch; each case runs in a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = ("import os, sys; import diarq.worker; "
         "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")


def _policy_after_import(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items()
             if k not in {"OMP_WAIT_POLICY", "DIARQ_CONCURRENT_STAGES", "DIARQ_DEVICE"}}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env},
                         capture_output=True, text=True, timeout=120, check=True)
    policy, torch_loaded = out.stdout.split()
    assert torch_loaded == "False"  # importing the package loads no model code
    return policy


@pytest.mark.parametrize(("env", "policy"), [
    ({}, "PASSIVE"),  # the default: stages run side by side on CPU
    ({"DIARQ_CONCURRENT_STAGES": "0"}, "None"),  # one after the other: OpenMP's default
    ({"DIARQ_DEVICE": "cuda"}, "None"),  # GPU workers run their stages in turn
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"),  # what the operator set stands
])
def test_wait_policy_follows_the_settings(env: dict[str, str], policy: str) -> None:
    assert _policy_after_import(**env) == policy


def test_too_late_once_torch_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch  # noqa: F401

    from diarq.worker.runtime import set_openmp_wait_policy

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert set_openmp_wait_policy(True, "cpu") is False
    assert "OMP_WAIT_POLICY" not in os.environ
