"""Windows of one long transcription, shared between the thread that owns it and a helper.

faster-whisper transcribes a long recording window by window (``asr.split_points``,
cut at quiet points). On CPU the transcription runs in a thread beside the
diarization (worker/pipeline.py), on one core; when the diarization ends, the main
thread comes free and the second core would idle. ``WindowShare`` lets it help: the
owner takes windows from the front, in order; the helper takes them from the back,
and the two meet in the middle.

Each window is transcribed as the owner alone would have done it, so the transcript
is the same: the owner settles the language (given, or detected in the first window
with speech, which all later windows then use), and the helper only takes windows
after that one. A helper that stops (a cancel, a failure) hands its window back; the
owner waits for the helper's windows before it assembles the transcript in order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from diarq.shared.media import SAMPLE_RATE

# what one window gives: its segments (on the recording's timeline) and faster-whisper's
# info (language, language_probability)
WindowRun = Callable[[int, str | None, Callable[[float], None]], tuple[list[Any], Any]]


class _OwnerGone(Exception):  # noqa: N818 - raised inside the helper's window to end it
    """The owner has finished, failed or stopped while the helper was in a window."""


@dataclass
class _Window:
    lo: int
    hi: int
    state: str = "todo"  # todo -> owner | helper -> done
    done_samples: int = 0
    segments: list[Any] | None = None
    info: Any = None


class WindowShare:
    """Front-and-back work on one transcription's windows (module docstring).

    The owner calls :meth:`run_owner`; a helper (another thread) calls :meth:`help` at
    any time: before the owner has started (it then waits), during, or after; the
    owner's side calls :meth:`close` when its transcription is over, however it ended."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._windows: list[_Window] = []
        self._run: WindowRun | None = None
        self._language: str | None = None
        self._settled_at: int | None = None  # windows after this one use self._language
        self._closed = False
        self._total = 1

    # -- owner ---------------------------------------------------------------------------
    def run_owner(self, windows: list[tuple[int, int]], language: str | None,
                  run: WindowRun, progress: Callable[[float], None] | None = None
                  ) -> tuple[list[tuple[list[Any], Any]], list[str | None]]:
        """Transcribe every window (the helper may take some); return each window's
        (segments, info) and the language it was transcribed with, in order.
        ``progress``: share of the recording's samples done (both workers)."""
        with self._cond:
            self._windows = [_Window(lo, hi) for lo, hi in windows]
            self._total = max(sum(hi - lo for lo, hi in windows), 1)
            self._run = run
            self._language = language
            self._settled_at = -1 if language is not None else None
            self._closed = False
        report = self._reporter(progress)
        try:
            while (k := self._claim_front()) is not None:
                used = self._language if self._settled_at is not None else None
                segments, info = run(k, used, self._advance(k, report))
                self._finish(k, segments, info, owner=True)
                report()
            self._wait_for_helper(report)
            return ([(w.segments or [], w.info) for w in self._windows],
                    [self._language_of(k) for k in range(len(self._windows))])
        finally:
            self.close()

    def _claim_front(self) -> int | None:
        with self._cond:
            for k, w in enumerate(self._windows):
                if w.state == "todo":
                    w.state = "owner"
                    return k
            return None

    def _wait_for_helper(self, report: Callable[[], None]) -> None:
        """Until no window is with the helper; ``report`` is called every half second (the
        owner's progress, which raises when the owner is told to stop)."""
        while True:
            with self._cond:
                if any(w.state == "todo" for w in self._windows):
                    k = self._claim_front_locked()
                else:
                    k = None
                    if not any(w.state == "helper" for w in self._windows):
                        return
                    self._cond.wait(timeout=0.5)
            if k is not None:  # the helper handed a window back: do it here
                segments, info = self._run(k, self._language_of(k),  # type: ignore[misc]
                                           self._advance(k, report))
                self._finish(k, segments, info, owner=True)
            report()

    def _claim_front_locked(self) -> int:
        k = next(k for k, w in enumerate(self._windows) if w.state == "todo")
        self._windows[k].state = "owner"
        return k

    # -- helper --------------------------------------------------------------------------
    def help(self, progress: Callable[[float], None] | None = None) -> int:
        """Transcribe windows from the back until the owner has the rest; returns how
        many it did. Until the owner has started and settled the language it waits
        (calling ``progress`` every half second), unless the owner is done (``close``).
        An exception from ``progress`` (a cancel) stops it: its window goes back to the
        owner."""
        done = 0
        report = self._reporter(progress)
        while True:
            with self._cond:
                k = self._claim_back_locked()
                run = self._run
                wait = k is None and not self._closed and (
                    run is None or (self._settled_at is None
                                    and any(w.state == "todo" for w in self._windows)))
                if wait:
                    self._cond.wait(timeout=0.5)
            if k is None or run is None:
                if not wait:
                    return done
                report()  # polls for a cancel while waiting
                continue

            def checked() -> None:
                if self._closed:  # the owner has failed or stopped: nothing to help
                    raise _OwnerGone
                report()

            try:
                segments, info = run(k, self._language_of(k), self._advance(k, checked))
            except _OwnerGone:
                return done
            except BaseException:
                with self._cond:  # the owner does this window itself
                    self._windows[k].state = "todo"
                    self._windows[k].done_samples = 0
                    self._cond.notify_all()
                raise
            self._finish(k, segments, info, owner=False)
            done += 1

    def close(self) -> None:
        """The owner's transcription is over (done, failed, or it never used the share):
        a waiting helper returns."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _claim_back_locked(self) -> int | None:
        if self._closed or self._settled_at is None:
            return None
        for k in range(len(self._windows) - 1, self._settled_at, -1):
            w = self._windows[k]
            if w.state == "todo":
                w.state = "helper"
                return k
            if w.state == "owner":  # met the owner
                return None
        return None

    # -- both ----------------------------------------------------------------------------
    def _language_of(self, k: int) -> str | None:
        """The language window k is (was) transcribed with: settled for later windows."""
        if self._settled_at is not None and k > self._settled_at:
            return self._language
        return None

    def _advance(self, k: int, report: Callable[[], None]) -> Callable[[float], None]:
        """A window's progress callback: seconds into the window."""
        w = self._windows[k]

        def advance(seconds: float) -> None:
            w.done_samples = max(w.done_samples, min(int(seconds * SAMPLE_RATE), w.hi - w.lo))
            report()

        return advance

    def _reporter(self, progress: Callable[[float], None] | None) -> Callable[[], None]:
        """Reports the share of the recording done (both workers) to ``progress``."""
        if progress is None:
            return lambda: None
        return lambda: progress(min(sum(w.done_samples for w in self._windows)
                                    / self._total, 1.0))

    def _finish(self, k: int, segments: list[Any], info: Any, owner: bool) -> None:
        with self._cond:
            w = self._windows[k]
            w.state, w.segments, w.info = "done", segments, info
            w.done_samples = w.hi - w.lo
            if owner and self._settled_at is None and segments:
                # the first window with speech settles the language for all later ones
                self._language, self._settled_at = info.language, k
            self._cond.notify_all()
