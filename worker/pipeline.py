"""The speech pipeline as one pure function: audio file + options → Result.

decode → diarize → transcribe → align → assign. No database, no Celery: the
worker task and the ``diarq process`` command both call :func:`run_pipeline`.

Progress: ``progress(stage, fraction)`` with stages in that order, each from 0
to 1, never going backwards. ``should_cancel()`` is polled between stages and
(at most once a second) from inside long stages; when it returns True the run
stops with :class:`JobCancelled`.

Decisions: ``diarize=False`` leaves every speaker None (no invented SPEAKER_00)
and lists no speakers; ``align=False`` gives segment-level times and no words.
Silence-only audio gives a result without segments (language None).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from diarq.shared.errors import ModelError
from diarq.shared.options import JobOptions
from diarq.shared.result import AudioInfo, Result, Turn
from diarq.shared.settings import get_settings
from diarq.shared.versions import package_version

log = logging.getLogger(__name__)

STAGES = ("decode", "diarize", "transcribe", "align", "assign")
ProgressFn = Callable[[str, float], None]
CancelFn = Callable[[], bool]
_CANCEL_POLL_S = 1.0


class JobCancelled(Exception):  # noqa: N818 - the name the worker catches
    """The job was cancelled while running (should_cancel() returned True)."""


class _Reporter:
    """Monotonic per-stage progress, with cancellation polled from progress calls."""

    def __init__(self, progress: ProgressFn | None, should_cancel: CancelFn | None) -> None:
        self._progress = progress
        self._should_cancel = should_cancel
        self._stage: str | None = None
        self._value = 0.0
        self._last_poll = 0.0

    def check_cancel(self, *, throttle: bool = False) -> None:
        if self._should_cancel is None:
            return
        now = time.monotonic()
        if throttle and now - self._last_poll < _CANCEL_POLL_S:
            return
        self._last_poll = now
        if self._should_cancel():
            raise JobCancelled(f"cancelled during {self._stage or 'start'}")

    def start(self, stage: str) -> None:
        self.check_cancel()
        self._stage, self._value = stage, 0.0
        self._emit(0.0)

    def __call__(self, fraction: float) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        if fraction > self._value:
            self._value = fraction
            self._emit(fraction)
        self.check_cancel(throttle=True)

    def finish(self) -> None:
        if self._value < 1.0:
            self._value = 1.0
            self._emit(1.0)

    def _emit(self, fraction: float) -> None:
        if self._progress is not None and self._stage is not None:
            self._progress(self._stage, fraction)


def run_pipeline(
    audio_path: Path | str,
    options: JobOptions,
    *,
    registry: Any = None,
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    job_id: str | None = None,
    audio_name: str | None = None,
    on_audio: Callable[[Any], None] | None = None,
) -> Result:
    """Run the whole pipeline on ``audio_path``; raise DiarqError subclasses with codes.

    ``audio_name``: what messages call the audio (the uploaded file's name; default the
    name of ``audio_path``, which on a server is a storage name the user never saw).
    ``on_audio``: called once with the decoded 16 kHz samples (the worker computes the
    waveform peaks from them instead of decoding the file a second time)."""
    settings = registry.settings if registry is not None else get_settings()
    if settings.bench_trivial_pipeline_s is not None:
        return _bench_trivial(settings.bench_trivial_pipeline_s, job_id)

    from diarq.shared.media import SAMPLE_RATE, probe_audio
    from diarq.worker.assign import assign
    from diarq.worker.audio import decode_audio
    from diarq.worker.registry import get_registry

    registry = registry or get_registry(settings)
    report = _Reporter(progress, should_cancel)
    timings: dict[str, float] = {}
    t_total = time.perf_counter()

    # decode
    report.start("decode")
    t0 = time.perf_counter()
    probe = probe_audio(audio_path, max_seconds=settings.max_audio_seconds, name=audio_name)
    audio = decode_audio(audio_path, probe=probe, max_seconds=settings.max_audio_seconds,
                         name=audio_name)
    duration = len(audio) / SAMPLE_RATE
    if on_audio is not None:
        on_audio(audio)
    timings["decode"] = time.perf_counter() - t0
    report.finish()

    # diarize
    report.start("diarize")
    t0 = time.perf_counter()
    turns: list[Turn] = []
    diarizer = None
    if options.diarize:
        diarizer = registry.diarizer()
        registry.before_torch_stage()
        turns = list(
            diarizer.diarize(
                audio,
                num_speakers=options.num_speakers,
                min_speakers=options.min_speakers,
                max_speakers=options.max_speakers,
                progress=report,
            )
        )
    timings["diarize"] = time.perf_counter() - t0
    report.finish()

    # transcribe (offline: word times come with it, from faster-whisper)
    report.start("transcribe")
    t0 = time.perf_counter()
    asr = registry.asr(options.asr_model)
    wants_words = options.align
    transcript = asr.transcribe(
        audio,
        language=options.language,
        prompt=options.prompt,
        word_timestamps=wants_words and not asr.use_whisperx,
        progress=report,
    )
    timings["transcribe"] = time.perf_counter() - t0
    report.finish()

    # align (hub profile: wav2vec2 per language)
    report.start("align")
    t0 = time.perf_counter()
    segments = transcript.segments
    alignment: dict[str, Any]
    if not wants_words:
        alignment = {"method": "none", "note": "align=false: segment-level times only"}
    elif not asr.use_whisperx:
        alignment = {"method": "faster-whisper word timestamps"}
    elif not segments or not transcript.language:
        alignment = {"method": "wav2vec2", "note": "nothing to align"}
    else:
        try:
            aligner = registry.aligner(transcript.language)
        except ModelError as exc:
            # a transcript with segment times beats a failed job; the result says why
            log.warning("alignment skipped code=%s", exc.code)
            alignment = {"method": "none", "note": exc.message, "code": exc.code}
        else:
            registry.before_torch_stage()
            segments = aligner.align(segments, audio, progress=report)
            alignment = {"method": "wav2vec2", **aligner.describe()}
    timings["align"] = time.perf_counter() - t0
    report.finish()

    # the samples are no longer needed: free them before building the result
    del audio

    # assign
    report.start("assign")
    t0 = time.perf_counter()
    segments, turns, speakers = assign(
        segments, turns, participants=options.participants, language=transcript.language
    )
    timings["assign"] = time.perf_counter() - t0
    report.finish()
    timings["total"] = time.perf_counter() - t_total
    timings = {k: round(v, 3) for k, v in timings.items()}

    models: dict[str, Any] = {
        **registry.describe(),
        "diarq": package_version("diarq"),
        "diarization": diarizer.describe() if diarizer is not None else None,
        "asr": asr.describe(),
        "alignment": alignment,
    }
    if transcript.info:
        models["asr"].update(transcript.info)
    return Result(
        job_id=job_id,
        audio=AudioInfo(duration=round(duration, 3), sample_rate=SAMPLE_RATE),
        language=transcript.language,
        speakers=speakers,
        segments=segments,
        diarization=turns,
        models=models,
        timings=timings,
    )


def _bench_trivial(seconds: float, job_id: str | None) -> Result:
    """Bench-only stand-in (DIARQ_BENCH_TRIVIAL_PIPELINE_S): sleeps, returns an empty,
    clearly labelled result. Measures queue overhead without model time."""
    time.sleep(max(seconds, 0.0))
    return Result(
        job_id=job_id,
        audio=AudioInfo(duration=0.0, sample_rate=16000),
        language=None,
        models={"bench_trivial": True},
        timings={"total": round(seconds, 3)},
    )


