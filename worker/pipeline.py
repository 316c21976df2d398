"""The speech pipeline as one pure function: audio file + options → Result.

decode → diarize → transcribe → align → assign. No database, no Celery: the
worker task and the ``diarq process`` command both call :func:`run_pipeline`.

``multichannel``: every channel is decoded apart; "diarize" finds each channel's own
speech (worker/multichannel.py) instead of running the diarization model, and each
channel is transcribed and aligned on its own. Voice references (``references``) are
decoded with the audio and matched to the speakers at the end of "assign"
(worker/voices.py).

Progress: ``progress(stage, fraction)`` with stages in that order, each from 0
to 1, never going backwards. On CPU (``concurrent_stages``, a mono job that is
diarized) the transcription runs in a second thread during "diarize"; its progress
is shown once "transcribe" starts, and its timing is its own run time, so the stage
times add up to more than the total. Once the diarization is done the main thread
takes the transcription's windows from the back (worker/transcript_windows.py), so
both cores transcribe. ``should_cancel()`` is polled between stages and
(at most once a second) from inside long stages; when it returns True the run
stops with :class:`JobCancelled`.

Decisions: ``diarize=False`` leaves every speaker None (no invented SPEAKER_00)
and lists no speakers; ``align=False`` gives segment-level times and no words.
Silence-only audio gives a result without segments (language None).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diarq.shared.errors import AudioError, DiarqError, ModelError
from diarq.shared.options import JobOptions, SpeakerReference, check_multichannel
from diarq.shared.result import AudioInfo, Result, Segment, Speaker, Turn
from diarq.shared.settings import get_settings
from diarq.shared.versions import package_version

log = logging.getLogger(__name__)

STAGES = ("decode", "diarize", "transcribe", "align", "assign")
REFERENCE_MAX_S = 10.0  # voice references are 2-10 s (checked at submit from the header)
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
    references: Sequence[Path] = (),
    on_audio: Callable[[Any], None] | None = None,
) -> Result:
    """Run the whole pipeline on ``audio_path``; raise DiarqError subclasses with codes.

    ``audio_name``: what messages call the audio (the uploaded file's name; default the
    name of ``audio_path``, which on a server is a storage name the user never saw).
    ``references``: the voice reference files of ``options.speaker_references``, in the
    same order.
    ``on_audio``: called once with the decoded 16 kHz samples (mono, or (channels,
    samples) for a multichannel job): the worker computes the waveform peaks from them
    instead of decoding the file a second time."""
    settings = registry.settings if registry is not None else get_settings()
    if settings.bench_trivial_pipeline_s is not None:
        return _bench_trivial(settings.bench_trivial_pipeline_s, job_id)

    from diarq.worker.registry import get_registry

    wanted = list(options.speaker_references or [])
    if len(references) != len(wanted):
        raise DiarqError(f"the job names {len(wanted)} voice references but "
                         f"{len(references)} were found in storage; submit it again",
                         code="reference_missing")
    registry = registry or get_registry(settings)
    device = registry.gpu
    device.reset_peak()
    try:
        return _run_stages(audio_path, options, registry, settings, _Reporter(
            progress, should_cancel), job_id, audio_name, device, references, wanted,
            on_audio)
    finally:
        device.release()  # GPU memory goes back between jobs (and after a failed one)


def _run_stages(audio_path: Path | str, options: JobOptions, registry: Any, settings: Any,
                report: _Reporter, job_id: str | None, audio_name: str | None,
                device: Any, references: Sequence[Path],
                wanted: list[SpeakerReference],
                on_audio: Callable[[Any], None] | None = None) -> Result:
    from diarq.shared.media import SAMPLE_RATE, probe_audio
    from diarq.worker.assign import assign_all
    from diarq.worker.audio import decode_audio
    from diarq.worker.device import run_with_oom_retry
    from diarq.worker.transcript_windows import WindowShare
    from diarq.worker.turns import SpeakerTurns

    timings: dict[str, float] = {}
    retries: list[str] = []  # CUDA out-of-memory retries, for the result
    t_total = time.perf_counter()

    # decode: mono, or (channels, samples) for a multichannel recording
    report.start("decode")
    t0 = time.perf_counter()
    shown = audio_name or Path(audio_path).name
    probe = probe_audio(audio_path, max_seconds=settings.max_audio_seconds, name=audio_name)
    channels = check_multichannel(options, probe.channels, shown)
    audio = decode_audio(audio_path, probe=probe, max_seconds=settings.max_audio_seconds,
                         name=audio_name, channels=channels)
    tracks = list(audio) if channels > 1 else [audio]
    clips = [_decode_reference(path, i, ref.name) for i, (path, ref)
             in enumerate(zip(references, wanted, strict=True))]
    duration = audio.shape[-1] / SAMPLE_RATE
    if on_audio is not None:
        on_audio(audio)
    timings["decode"] = time.perf_counter() - t0
    report.finish()

    # diarize (multichannel: who speaks is which channel hears them)
    report.start("diarize")
    t0 = time.perf_counter()
    asr = registry.asr(options.asr_model)
    background = windows = None
    if (settings.concurrent_stages and registry.device == "cpu" and options.diarize
            and not options.multichannel):
        # when the diarization is done, this thread takes windows from the back
        windows = WindowShare()
        background = _Background(lambda progress, tracks=tracks: _transcribe_tracks(
            registry, asr, tracks, options, device, retries, progress, windows))
        background.then(windows.close)  # however it ends, a waiting helper returns
    try:
        found = SpeakerTurns(turns=[])
        diarizer = None
        if options.multichannel:
            from diarq.worker.asr import speech_spans
            from diarq.worker.multichannel import (
                channel_turns,
                drowned,
                frame_levels,
                own_speech,
                spans_to_frames,
            )

            levels = frame_levels(audio)
            speech = np.stack([spans_to_frames(speech_spans(t), levels.shape[1])
                               for t in tracks])
            found = channel_turns(levels,
                                  own_speech(levels, speech, settings.multichannel_bleed_db))
            # frames where each channel hears someone else: its words there are bleed
            bleed = drowned(levels, settings.multichannel_bleed_db)
        elif options.diarize:
            diarizer = registry.diarizer()
            registry.before_torch_stage(beside_asr=background is not None)
            # the pipeline's own batch unless DIARQ_BATCH_SIZE is set (halved on CUDA OOM)
            found = run_with_oom_retry(
                device, "diarize", settings.batch_size or diarizer.batch_size,
                lambda batch, audio=audio: diarizer.run(
                    audio, num_speakers=options.num_speakers,
                    min_speakers=options.min_speakers, max_speakers=options.max_speakers,
                    progress=report, batch_size=batch),
                retries)
        timings["diarize"] = time.perf_counter() - t0
        report.finish()

        # transcribe each track. Offline: faster-whisper word times. Hub (WhisperX):
        # batched segments, words from a wav2vec2 aligner of the language; a language
        # without one gets the ASR model's own word times instead (decided before
        # transcribing: one pass)
        report.start("transcribe")
        t0 = time.perf_counter()
        if background is not None:
            # the stage thread's progress counts both threads' windows; while the
            # helper waits (or the route has no windows) that is what shows
            windows.help(lambda f: report(max(f, background.fraction)))
            plans, transcripts = background.result(report)
            timings["transcribe"] = background.seconds
        else:
            plans, transcripts = _transcribe_tracks(registry, asr, tracks, options, device,
                                                    retries, report)
            timings["transcribe"] = time.perf_counter() - t0
    finally:
        if background is not None:
            background.stop()  # on an error or a cancel: the thread ends before we do
    report.finish()

    # align (hub profile: wav2vec2 per language)
    report.start("align")
    t0 = time.perf_counter()
    per_track: list[list[Segment]] = []
    alignment: dict[str, Any] = {}
    for i, (track, transcript, plan) in enumerate(zip(tracks, transcripts, plans, strict=True)):
        segments, alignment = transcript.segments, dict(plan.alignment)
        if plan.aligner is not None:
            if not segments:
                alignment = {"method": "wav2vec2", "note": "nothing to align"}
            else:
                registry.before_torch_stage()
                share = _share(report, i, len(tracks))
                segments = run_with_oom_retry(
                    device, "align", 1,
                    lambda _, track=track, segments=segments, plan=plan, share=share:
                    plan.aligner.align(segments, track, progress=share), retries)
                alignment = {"method": "wav2vec2", **plan.aligner.describe()}
        per_track.append(segments)
    timings["align"] = time.perf_counter() - t0
    report.finish()

    # assign: words to speakers, then names (participants, or matching voice references)
    report.start("assign")
    t0 = time.perf_counter()
    language = _main_language(transcripts)
    participants = None if wanted else options.participants
    if options.multichannel:
        from diarq.worker.multichannel import (
            channel_speakers,
            keep_own_words,
            merge_channels,
            speaker_id,
        )

        segments = merge_channels([
            keep_own_words(segs, found.turns, speaker_id(c), bleed[c], language)
            for c, segs in enumerate(per_track)])
        turns, exclusive = found.turns, found.exclusive
        speakers = channel_speakers(channels, turns, participants)
        voices = None
    else:
        out = assign_all(per_track[0], found.turns, exclusive=found.exclusive,
                         participants=participants, language=language)
        segments, turns, exclusive, speakers = out.segments, out.turns, out.exclusive, \
            out.speakers
        voices = _renamed(found.voices, out.labels)
    voice_info = None
    if clips and speakers:
        registry.before_torch_stage()
        speakers, voice_info = _name_by_voice(registry, speakers, tracks, turns, clips, wanted,
                                              voices)
    # the samples are no longer needed: free them before building the result
    del audio, tracks, clips
    timings["assign"] = time.perf_counter() - t0
    report.finish()
    timings["total"] = time.perf_counter() - t_total
    timings = {k: round(v, 3) for k, v in timings.items()}

    models: dict[str, Any] = {
        **registry.describe(),
        **({"gpu": device.memory()} if device.memory() is not None else {}),
        **({"gpu_retries": retries} if retries else {}),
        "diarq": package_version("diarq"),
        "diarization": diarizer.describe() if diarizer is not None else None,
        "asr": asr.describe(),
        "alignment": alignment,
    }
    if options.multichannel:
        models["diarization"] = {"method": "multichannel", "channels": channels,
                                 "bleed_db": settings.multichannel_bleed_db}
    if voice_info is not None:
        models["voice_references"] = voice_info
    if transcripts[0].info:
        models["asr"].update(transcripts[0].info)
    result = Result(
        job_id=job_id,
        audio=AudioInfo(duration=round(duration, 3), sample_rate=SAMPLE_RATE),
        language=language,
        speakers=speakers,
        segments=segments,
        diarization=turns,
        exclusive_diarization=exclusive,
        models=models,
        timings=timings,
    )
    # the speakers' voice embeddings travel with the result, outside its JSON (the
    # worker keeps them in the database: biometric data, shared/voices.py)
    result._voices = voices
    return result


def _transcribe_tracks(registry: Any, asr: Any, tracks: Sequence[np.ndarray],
                       options: JobOptions, device: Any, retries: list[str],
                       progress: Callable[[float], None], windows: Any = None
                       ) -> tuple[list[Any], list[Any]]:
    """Word plan and transcript of every track, in order (``windows``: a mono job's
    transcription windows, which another thread may help with)."""
    from diarq.worker.device import run_with_oom_retry

    plans = [_word_plan(registry, asr, track, options) for track in tracks]
    transcripts = []
    for i, (track, plan) in enumerate(zip(tracks, plans, strict=True)):
        share = _share(progress, i, len(tracks))
        transcripts.append(run_with_oom_retry(
            device, "transcribe", registry.batch_size,
            lambda batch, track=track, plan=plan, share=share: asr.transcribe(
                track, language=plan.language, prompt=options.prompt,
                hotwords=options.hotwords,
                word_timestamps=options.align and not plan.batched, progress=share,
                batched=plan.batched, batch_size=batch, share=windows),
            retries))
    return plans, transcripts


class _StageStopped(Exception):  # noqa: N818 - raised inside the thread to end it early
    """The background stage was told to stop (the job failed or was cancelled)."""


class _Background:
    """One stage's work in a thread of its own, started at once. Its progress is kept
    (not reported: the reporter belongs to the main thread's stage) and shown by
    :meth:`result`; :meth:`stop` makes its next progress call raise, so it ends soon."""

    def __init__(self, work: Callable[[Callable[[float], None]], Any]) -> None:
        self.fraction = 0.0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="diarq-stage")
        self._future: Future[Any] = self._pool.submit(self._run, work)

    def _run(self, work: Callable[[Callable[[float], None]], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return work(self._progress)
        finally:
            self.seconds = time.perf_counter() - t0

    def then(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (in the thread) when the work has ended, however."""
        self._future.add_done_callback(lambda _: callback())

    def _progress(self, fraction: float) -> None:
        if self._stop.is_set():
            raise _StageStopped
        self.fraction = max(self.fraction, min(max(float(fraction), 0.0), 1.0))

    def result(self, report: _Reporter, poll: float = 0.5) -> Any:
        """Its result (or its exception), reporting its progress (and polling for a
        cancel) until it is done."""
        while True:
            try:
                return self._future.result(timeout=poll)
            except FutureTimeout:
                report(self.fraction)

    def stop(self) -> None:
        """Tell the work to stop and wait until the thread has ended."""
        self._stop.set()
        self._pool.shutdown(wait=True)


def _renamed(voices: Any, labels: dict[str, str]) -> Any:
    """The diarizer's VoiceSet with the result's speaker labels (None stays None)."""
    if voices is None:
        return None
    from diarq.shared.voices import VoiceSet

    return VoiceSet(model=voices.model,
                    vectors={labels[k]: v for k, v in voices.vectors.items() if k in labels},
                    seconds={labels[k]: s for k, s in voices.seconds.items() if k in labels})


@dataclass
class _WordPlan:
    """How one track gets its word times, decided before it is transcribed."""

    language: str | None
    aligner: Any = None  # a wav2vec2 aligner (hub profile), or None
    batched: bool = False  # WhisperX's batched transcription (segment times only)
    alignment: dict[str, Any] = field(default_factory=dict)  # the result's models entry


def _word_plan(registry: Any, asr: Any, track: np.ndarray, options: JobOptions) -> _WordPlan:
    if not options.align:
        return _WordPlan(options.language, batched=asr.use_whisperx, alignment={
            "method": "none", "note": "align=false: segment-level times only"})
    if not asr.use_whisperx:
        return _WordPlan(options.language,
                         alignment={"method": "faster-whisper word timestamps"})
    language = asr.check_language(options.language) or asr.detect_language(track)
    try:
        aligner = registry.aligner(language)
    except ModelError as exc:
        log.warning("no alignment model code=%s language=%s", exc.code, language)
        return _WordPlan(language, alignment={
            "method": "faster-whisper word timestamps",
            "note": f"{exc.message}; word times come from the ASR model", "code": exc.code})
    return _WordPlan(language, aligner=aligner, batched=True)


def _share(report: Callable[[float], None], index: int, count: int
           ) -> Callable[[float], None]:
    """Progress of one of ``count`` equal parts of a stage (one channel's transcription)."""
    return lambda fraction: report((index + min(max(fraction, 0.0), 1.0)) / count)


def _main_language(transcripts: Sequence[Any]) -> str | None:
    """The language of the track with the most transcribed text (the only one, mono)."""
    spoken = [t for t in transcripts if t.language]
    if not spoken:
        return None
    return max(spoken, key=lambda t: sum(len(s.text) for s in t.segments)).language


def _decode_reference(path: Path, index: int, name: str) -> np.ndarray:
    """A voice reference's samples; AudioError (``reference_not_audio``) when unusable."""
    from diarq.worker.audio import decode_audio

    try:
        return decode_audio(path, max_seconds=REFERENCE_MAX_S + 1)
    except AudioError as exc:
        raise AudioError(f"voice reference {index + 1} ({name}) is not usable audio: "
                         f"{exc.message}", code="reference_not_audio") from None


def _name_by_voice(registry: Any, speakers: list[Speaker], tracks: Sequence[np.ndarray],
                   turns: Sequence[Turn], clips: Sequence[np.ndarray],
                   wanted: Sequence[SpeakerReference],
                   voices: Any = None) -> tuple[list[Speaker], dict[str, Any]]:
    """Speakers whose voice matches a reference take its name (worker/voices.py). The
    diarizer's own voice vectors are used when its model is the encoder's (offline:
    the speaker-level ECAPA stage already embedded each speaker's pooled speech)."""
    from diarq.worker.voices import match_references, pool_by_name, similarities

    encoder = registry.voice_encoder()
    threshold = registry.settings.voice_match_threshold
    vectors: dict[str, np.ndarray] = {}
    if voices is not None and voices.model == encoder.model_name:
        vectors = dict(voices.vectors)
    for speaker in speakers:
        if speaker.id in vectors:
            continue
        # multichannel: a speaker's voice is on their own channel only
        track = tracks[speaker.channel - 1] if speaker.channel else tracks[0]
        mine = [t for t in turns if t.speaker == speaker.id] if speaker.channel else turns
        found = encoder.speaker_vectors(track, mine)
        if speaker.id in found:
            vectors[speaker.id] = found[speaker.id]
    refs = [(ref.name, vec) for ref, clip in zip(wanted, clips, strict=True)
            if (vec := encoder.embed(clip)) is not None]
    pooled = pool_by_name(refs)
    matches = match_references(vectors, pooled, threshold)
    named = [s.model_copy(update={"name": matches[s.id].name}) if s.id in matches else s
             for s in speakers]
    info = {
        "encoder": encoder.description,
        "threshold": threshold,
        "matches": [{"speaker": m.speaker, "name": m.name, "score": m.score}
                    for m in matches.values()],
        "unmatched": [name for name in pooled if name not in {m.name for m in matches.values()}],
        # every speaker against every name: why a voice was or was not recognised
        "scores": similarities(vectors, pooled),
    }
    return named, info


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


