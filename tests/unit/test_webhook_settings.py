"""Webhook retry schedule setting: default over an hour, overridable, checked at start."""

from __future__ import annotations

import pytest

from diarq.shared.errors import ConfigError
from diarq.shared.settings import load_settings


def test_default_schedule_retries_for_more_than_an_hour() -> None:
    delays = load_settings(webhook_retry_delays_s="").webhook_delays
    assert sum(delays) >= 3600 and list(delays) == sorted(delays)


def test_schedule_override_and_refusal() -> None:
    assert load_settings(webhook_retry_delays_s="0.2, 0.5").webhook_delays == (0.2, 0.5)
    for bad in ("soon", "10,-1"):
        with pytest.raises(ConfigError, match="DIARQ_WEBHOOK_RETRY_DELAYS_S"):
            load_settings(webhook_retry_delays_s=bad)
