"""Two threads on one transcription's windows: the same transcript as one thread alone.

The window "transcriber" here is a plain function of (window, language), so what each
window gives, and with which language it was asked, can be checked exactly; the real
route (faster-whisper) is covered by the pipeline tests.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from diarq.worker.transcript_windows import WindowShare

SECOND = 16000


def _windows(n: int) -> list[tuple[int, int]]:
    return [(k * 60 * SECOND, (k + 1) * 60 * SECOND) for k in range(n)]


class Transcriber:
    """Window k has speech unless listed silent; detects "fr"; records who ran what."""

    def __init__(self, silent: set[int] = frozenset(), pause: float = 0.0,  # type: ignore[assignment]
                 fail_at: int | None = None) -> None:
        self.silent, self.pause, self.fail_at = silent, pause, fail_at
        self.calls: list[tuple[int, str | None, str]] = []
        self.lock = threading.Lock()

    def __call__(self, k, language, advance):  # type: ignore[no-untyped-def]
        with self.lock:
            self.calls.append((k, language, threading.current_thread().name))
        for part in range(3):
            time.sleep(self.pause / 3)
            if self.fail_at == k:
                raise RuntimeError("window failed")
            advance(20.0 * (part + 1))
        segments = [] if k in self.silent else [f"w{k}:{language}"]
        return segments, SimpleNamespace(language=language or "fr",
                                         language_probability=0.9)


def _alone(n: int, language: str | None, **kw):  # type: ignore[no-untyped-def]
    run = Transcriber(**kw)
    out, langs = WindowShare().run_owner(_windows(n), language, run)
    return out, langs, run


@pytest.mark.parametrize("language", ["en", None])
def test_alone_every_window_once_in_order(language) -> None:  # type: ignore[no-untyped-def]
    seen: list[float] = []
    run = Transcriber(silent={0})
    out, langs = WindowShare().run_owner(_windows(4), language, run, seen.append)
    assert [k for k, _, _ in run.calls] == [0, 1, 2, 3]
    # window 0 has no speech: with no language given, window 1 settles it for 2 and 3
    want = [language] * 4 if language else [None, None, "fr", "fr"]
    assert langs == want and [c[1] for c in run.calls] == want
    assert [s for s, _ in out] == [[]] + [[f"w{k}:{want[k]}"] for k in (1, 2, 3)]
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("language", ["en", None])
def test_a_helper_takes_windows_from_the_back_and_changes_nothing(language) -> None:  # type: ignore[no-untyped-def]
    want, want_langs, _ = _alone(8, language, silent={0})
    share = WindowShare()
    run = Transcriber(silent={0}, pause=0.06)
    helped: list[int] = []

    def helper() -> None:
        while not run.calls or (language is None and len(run.calls) < 3):
            time.sleep(0.01)  # join while the owner is at work, after it settled
        helped.append(share.help())

    t = threading.Thread(target=helper, name="helper")
    t.start()
    out, langs = share.run_owner(_windows(8), language, run)
    t.join(5)
    assert out == want and langs == want_langs
    done = sorted(k for k, _, _ in run.calls)
    assert done == list(range(8))  # every window exactly once
    by_helper = [k for k, _, who in run.calls if who == "helper"]
    assert helped[0] == len(by_helper) >= 2
    assert by_helper == sorted(by_helper, reverse=True) and by_helper[0] == 7
    if language is None:  # only after window 1 (the first with speech) settled it
        assert min(by_helper) > 1


def test_a_helper_waits_for_the_owner_and_its_language() -> None:
    """A helper that comes first waits; while no window has speech the language is open
    and every window is the owner's; the owner's end releases the helper."""
    closed = WindowShare()
    closed.close()
    assert closed.help() == 0  # an owner that is done (or never used the share)

    share = WindowShare()
    run = Transcriber(silent={0, 1, 2}, pause=0.03)
    helped: list[int] = []
    ticks: list[float] = []

    def helper() -> None:
        helped.append(share.help(ticks.append))

    t = threading.Thread(target=helper, name="helper")
    t.start()
    time.sleep(0.6)  # the helper is waiting, and polls its progress meanwhile
    assert t.is_alive() and ticks
    share.run_owner(_windows(3), None, run)
    t.join(5)
    assert helped == [0] and not t.is_alive()
    assert [(k, lang, who) for k, lang, who in run.calls] == \
        [(k, None, "MainThread") for k in range(3)]


def test_a_helper_that_is_cancelled_hands_its_window_back() -> None:
    want, _, _ = _alone(6, "en")
    share = WindowShare()
    run = Transcriber(pause=0.06)
    errors: list[BaseException] = []

    def cancel(fraction: float) -> None:
        raise KeyboardInterrupt  # what a cancel looks like to the helper: any exception

    def helper() -> None:
        while not run.calls:
            time.sleep(0.01)
        try:
            share.help(cancel)
        except KeyboardInterrupt as exc:
            errors.append(exc)

    t = threading.Thread(target=helper, name="helper")
    t.start()
    out, _ = share.run_owner(_windows(6), "en", run)
    t.join(5)
    assert errors and out == want
    assert [k for k, _, who in run.calls if who != "helper"].count(5) == 1  # redone


def test_when_the_owner_fails_the_helper_stops() -> None:
    share = WindowShare()
    run = Transcriber(pause=0.3, fail_at=0)
    result: list[int] = []
    started = threading.Event()

    def helper() -> None:
        started.wait(5)
        result.append(share.help())

    t = threading.Thread(target=helper, name="helper")
    t.start()

    def first(k, language, advance):  # type: ignore[no-untyped-def]
        started.set()
        return run(k, language, advance)

    with pytest.raises(RuntimeError, match="window failed"):
        share.run_owner(_windows(4), "en", first)
    t.join(5)
    assert not t.is_alive() and result
    # the helper stopped inside its window (or before the next one)
    assert len([c for c in run.calls if c[2] == "helper"]) <= 1 and result[0] == 0
