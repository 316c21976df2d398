"""Speech recognition: Whisper (CTranslate2) with word times.

Two routes, chosen by whether a wav2vec2 alignment model can be had:

* ``whisperx`` (hub profile): WhisperX's batched pipeline (``whisperx.load_model``
  with its pyannote VAD, whose weights ship inside the whisperx package) gives
  segment texts; ``whisperx.align`` with a wav2vec2 model per language gives word
  times. This is WhisperX's fast GPU path.
* ``faster-whisper`` (offline profile): no wav2vec2 model exists offline, and
  WhisperX's batched pipeline runs without timestamps, so the words would have no
  times. faster-whisper's own ``word_timestamps`` (cross-attention alignment) with
  its bundled Silero VAD (``vad_filter=True``) gives word times with nothing
  downloaded.

``align=False``: segment-level times only, and ``Segment.words`` is empty (no
invented word times); speakers are then assigned per segment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diarq.shared.asr_models import OFFLINE_ASR_MODELS
from diarq.shared.errors import InvalidOptions, ModelError
from diarq.shared.media import SAMPLE_RATE
from diarq.shared.result import Segment, Word
from diarq.worker.transcript_windows import WindowShare

log = logging.getLogger(__name__)
Progress = Callable[[float], None]


@dataclass
class Transcript:
    segments: list[Segment]
    language: str | None
    # what produced it, for the result's "models" block
    info: dict[str, Any] = field(default_factory=dict)


def resolve_model_path(name: str, *, profile: str, model_dir: Path) -> str:
    """A local CTranslate2 directory for ``name``, or (hub profile) a name to download."""
    as_path = Path(name).expanduser()
    if as_path.is_dir():
        if not (as_path / "model.bin").is_file():
            raise ModelError(
                f"ASR model directory {as_path.name} has no model.bin; point DIARQ_ASR_MODEL "
                "at a faster-whisper (CTranslate2) model directory",
                code="model_not_found",
            )
        return str(as_path)
    if name in OFFLINE_ASR_MODELS:
        from diarq.worker.offline_models import offline_model_paths, require_offline_models

        local = offline_model_paths(model_dir).whisper(name)
        if profile == "offline":
            # verifies the pinned SHA-256 of every file (offline_model_missing/_corrupt)
            require_offline_models(model_dir, [local.name])
            return str(local)
        if (local / "model.bin").is_file():
            return str(local)
    if profile == "offline":
        raise ModelError(
            f"ASR model {name!r} is not available offline; use one of "
            f"{', '.join(OFFLINE_ASR_MODELS)} or a local faster-whisper directory, or set "
            "DIARQ_PROFILE=hub to download it",
            code="model_not_found",
        )
    return name  # faster-whisper / WhisperX download it from the hub


class WhisperAsr:
    """One loaded Whisper model (kept by the registry, reused across jobs)."""

    def __init__(
        self,
        model_path: str,
        *,
        name: str,
        device: str,
        compute_type: str,
        cpu_threads: int,
        use_whisperx: bool,
        batch_size: int = 8,
        download_root: str | None = None,
        workers: int = 1,
    ) -> None:
        self.name = name
        self.model_path = model_path
        self.device = device
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.use_whisperx = use_whisperx
        self.batch_size = batch_size
        try:
            if use_whisperx:
                import whisperx

                # WhisperX's own pyannote VAD loads from the whisperx package (offline-safe)
                self.pipeline = whisperx.load_model(
                    model_path, device, compute_type=compute_type, threads=cpu_threads,
                    vad_method="pyannote", download_root=download_root,
                )
                self.model = self.pipeline.model
            else:
                from faster_whisper import WhisperModel

                self.pipeline = None
                self.model = WhisperModel(
                    model_path, device=device, compute_type=compute_type,
                    cpu_threads=cpu_threads, download_root=download_root,
                    local_files_only=Path(model_path).is_dir(),
                    # windows transcribed by two threads at once run in parallel (the
                    # weights are shared): worker/transcript_windows.py
                    num_workers=workers,
                )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(
                f"could not load ASR model {name!r} ({type(exc).__name__}); check "
                "DIARQ_ASR_MODEL / DIARQ_COMPUTE_TYPE, or run `diarq doctor`",
                code="asr_model_load_failed",
            ) from exc
        self.english_only = not self.model.model.is_multilingual

    def describe(self) -> dict[str, Any]:
        import ctranslate2
        import faster_whisper

        info = {
            # a local directory is reported by its folder name, not the machine's path
            "name": Path(self.name).name if Path(self.name).is_dir() else self.name,
            "backend": "whisperx" if self.use_whisperx else "faster-whisper",
            "faster_whisper": faster_whisper.__version__,
            "ctranslate2": ctranslate2.__version__,
            "device": self.device,
            "compute_type": self.compute_type,
        }
        if self.use_whisperx:
            from importlib.metadata import version

            info["whisperx"] = version("whisperx")
        return info

    def check_language(self, language: str | None) -> str | None:
        if language and self.english_only and language.split("-")[0] != "en":
            raise InvalidOptions(
                f"ASR model {self.name!r} only transcribes English, not {language!r}; "
                "choose a multilingual model (e.g. asr_model=base)",
                code="language_unsupported",
            )
        return "en" if self.english_only else language

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        language: str | None = None,
        prompt: str | None = None,
        hotwords: list[str] | None = None,
        word_timestamps: bool = True,
        progress: Progress | None = None,
        batched: bool | None = None,
        batch_size: int | None = None,
        share: WindowShare | None = None,
    ) -> Transcript:
        """Transcribe 16 kHz mono float32 ``audio``. Progress: share of audio done (0..1).

        ``batched`` (default: the WhisperX route): WhisperX's batched pipeline, segment
        times only (words come from the aligner); otherwise faster-whisper with
        ``word_timestamps``, on the same loaded model (the hub profile's route for a
        language without an alignment model). ``hotwords``: names and terms to
        recognise, given to faster-whisper's ``hotwords`` (placed in the decoder's prompt
        of every window, after ``prompt``). ``share``: lets another thread transcribe
        some of the windows at the same time (faster-whisper route; the transcript is
        the same)."""
        language = self.check_language(language)
        hints = hotwords_text(hotwords)
        if self.use_whisperx if batched is None else batched:
            return self._transcribe_whisperx(audio, language, prompt, hints, progress,
                                             batch_size or self.batch_size)
        return self._transcribe_faster_whisper(audio, language, prompt, hints, word_timestamps,
                                               progress, share)

    def detect_language(self, audio: np.ndarray) -> str:
        """The language of the first 30 s (what WhisperX itself would detect)."""
        if self.english_only:
            return "en"
        if self.pipeline is not None:
            return str(self.pipeline.detect_language(audio))
        return str(self.model.detect_language(audio[: 30 * SAMPLE_RATE])[0])

    def _transcribe_faster_whisper(
        self,
        audio: np.ndarray,
        language: str | None,
        prompt: str | None,
        hotwords: str | None,
        word_timestamps: bool,
        progress: Progress | None,
        share: WindowShare | None = None,
    ) -> Transcript:
        # faster-whisper computes the log-mel features of the whole input at once
        # (~2.5 GB per hour of audio at the STFT's peak): long recordings are cut
        # into windows at quiet points and transcribed one after the other (or from
        # both ends when a helper joins: ``share``, worker/transcript_windows.py).
        windows = split_points(audio)

        def run(k: int, lang: str | None, advance: Progress) -> tuple[list[Segment], Any]:
            lo, hi = windows[k]
            offset = lo / SAMPLE_RATE
            seg_iter, info = self.model.transcribe(
                audio[lo:hi],  # a view: no copy of the samples
                language=lang,
                initial_prompt=prompt or None,
                hotwords=hotwords,
                word_timestamps=word_timestamps,
                vad_filter=True,  # Silero VAD (bundled ONNX): skips silence, curbs hallucinations
                beam_size=5,
                # conditioning on the previous window makes Whisper loop on long meetings
                condition_on_previous_text=False,
            )
            found = []
            for s in seg_iter:  # a generator: decoding happens as we iterate
                if s.text.strip():
                    found.append(_segment(s, offset, word_timestamps))
                advance(float(s.end))
            return found, info

        per_window, _ = (share or WindowShare()).run_owner(windows, language, run, progress)
        segments = [s for found, _ in per_window for s in found]
        # the language and its probability as one pass in order gives them: the first
        # window with speech settles the language (all later windows used it)
        lang_prob = 0.0
        spoken = False
        for found, info in per_window:
            spoken = spoken or bool(found)
            if language is None and spoken:
                language, lang_prob = info.language, float(info.language_probability or 0)
            elif language is not None and not lang_prob:
                lang_prob = float(info.language_probability or 0)
        if progress is not None:
            progress(1.0)
        return Transcript(
            segments=segments,
            # a language "detected" in silence means nothing: report none
            language=language if segments or language else None,
            info={"language_probability": round(lang_prob, 3)},
        )

    def _transcribe_whisperx(
        self,
        audio: np.ndarray,
        language: str | None,
        prompt: str | None,
        hotwords: str | None,
        progress: Progress | None,
        batch_size: int,
    ) -> Transcript:
        from dataclasses import replace

        pipe = self.pipeline
        old_options = pipe.options
        if prompt or hotwords:
            # WhisperX passes both on to faster-whisper's prompt of each batched window
            pipe.options = replace(old_options,
                                   initial_prompt=prompt or old_options.initial_prompt,
                                   hotwords=hotwords)
        try:
            out = pipe.transcribe(
                audio, batch_size=batch_size, language=language,
                progress_callback=(lambda pct: progress(min(pct / 100.0, 1.0)))
                if progress else None,
            )
        finally:
            pipe.options = old_options
        segments = [
            Segment(start=round(s["start"], 3), end=round(s["end"], 3), speaker=None,
                    text=s["text"].strip())
            for s in out["segments"]
            if s["text"].strip()
        ]
        if progress is not None:
            progress(1.0)
        return Transcript(segments=segments, language=out.get("language") or language)


def _segment(s: Any, offset: float, word_timestamps: bool) -> Segment:
    """A faster-whisper segment on the recording's timeline."""
    words = []
    if word_timestamps and s.words:
        words = [
            Word(word=w.word.strip(), start=round(offset + w.start, 3),
                 end=round(offset + w.end, 3), score=round(w.probability, 3))
            for w in s.words
            if w.word.strip()
        ]
    return Segment(start=round(offset + s.start, 3), end=round(offset + s.end, 3),
                   speaker=None, text=s.text.strip(), words=words,
                   avg_logprob=_r(s.avg_logprob), compression_ratio=_r(s.compression_ratio),
                   no_speech_prob=_r(s.no_speech_prob), temperature=_r(s.temperature))


def hotwords_text(hotwords: list[str] | None) -> str | None:
    """The hotwords as the one string faster-whisper takes ("Szymborska, Kubernetes")."""
    words = [w.strip() for w in hotwords or [] if w.strip()]
    return ", ".join(words) or None


def speech_spans(audio: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) sample ranges of speech in 16 kHz mono ``audio`` (faster-whisper's bundled
    Silero VAD; pauses of 0.3 s split, 0.1 s of padding): per channel of a multichannel
    recording."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=300, speech_pad_ms=100)
    return [(int(c["start"]), int(c["end"])) for c in get_speech_timestamps(audio, options)]


WINDOW_S = 600.0  # transcription window for long audio (bounds feature memory)
_SEARCH_S = 20.0  # look this far either side of a window end for a quiet point
_FRAME = 480  # 30 ms energy frames


def split_points(audio: np.ndarray, window_s: float | None = None) -> list[tuple[int, int]]:
    """[lo, hi) sample ranges of about ``window_s`` each, cut at the quietest 30 ms
    frame near each nominal boundary (so a cut rarely falls inside a word)."""
    n = len(audio)
    window = int((window_s or WINDOW_S) * SAMPLE_RATE)
    if n <= window * 1.5:
        return [(0, n)]
    search = min(int(_SEARCH_S * SAMPLE_RATE), window // 4)
    cuts = [0]
    while n - cuts[-1] > window * 1.5:
        target = cuts[-1] + window
        lo, hi = target - search, min(target + search, n)
        frames = (hi - lo) // _FRAME
        region = audio[lo : lo + frames * _FRAME].reshape(frames, _FRAME)
        energy = np.einsum("ij,ij->i", region, region)  # no squared copy of the region
        cuts.append(lo + int(energy.argmin()) * _FRAME + _FRAME // 2)
    cuts.append(n)
    return list(zip(cuts[:-1], cuts[1:], strict=True))


class Aligner:
    """wav2vec2 alignment (WhisperX ``load_align_model``) for one language: the model named
    for it in DIARQ_ALIGN_MODELS (a directory or hub id), else WhisperX's default."""

    def __init__(self, language: str, device: str, model_dir: str | None = None,
                 model_name: str | None = None) -> None:
        import whisperx
        from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH

        self.language = language
        self.device = device
        self.model_name = model_name
        if model_name is None and language not in {**DEFAULT_ALIGN_MODELS_TORCH,
                                                   **DEFAULT_ALIGN_MODELS_HF}:
            raise ModelError(
                f"no wav2vec2 alignment model is known for language {language!r}; name one "
                f"in DIARQ_ALIGN_MODELS ({language}=<directory or hub id>)",
                code="align_model_missing",
            )
        failure: str | None = None
        try:
            # whisperx turns any load failure of a named model into ValueError
            self.model, self.metadata = whisperx.load_align_model(
                language_code=language, device=device, model_dir=model_dir,
                model_name=model_name,
            )
        except (ValueError, OSError) as exc:
            failure = type(exc).__name__
        if failure is not None:
            what = Path(model_name).name if model_name else "WhisperX's default model"
            raise ModelError(
                f"could not load the alignment model for {language!r} ({what}: {failure}); "
                "check DIARQ_ALIGN_MODELS, or network access to the hub for the default",
                code="align_model_unavailable",
            )

    def describe(self) -> dict[str, Any]:
        name = self.model_name
        shown = Path(name).name if name and Path(name).expanduser().is_dir() else name
        return {"language": self.language, "model": shown or "whisperx default",
                "type": str(self.metadata.get("type", "wav2vec2"))}

    def align(
        self, segments: list[Segment], audio: np.ndarray, progress: Progress | None = None
    ) -> list[Segment]:
        import whisperx

        if not segments:
            return []
        transcript = [{"start": s.start, "end": s.end, "text": s.text} for s in segments]
        out = whisperx.align(
            transcript, self.model, self.metadata, audio, self.device,
            progress_callback=(lambda pct: progress(min(pct / 100.0, 1.0))) if progress else None,
        )
        aligned: list[Segment] = []
        for s in out["segments"]:
            words = [
                Word(word=str(w["word"]).strip(), start=_r(w.get("start")), end=_r(w.get("end")),
                     score=_r(w.get("score")))
                for w in s.get("words", [])
                if str(w.get("word", "")).strip()
            ]
            aligned.append(
                Segment(start=round(s["start"], 3), end=round(s["end"], 3), speaker=None,
                        text=str(s["text"]).strip(), words=words)
            )
        return aligned


def _r(value: object) -> float | None:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if f != f else round(f, 3)


def set_nltk_data(path: Path) -> None:
    """WhisperX alignment splits sentences with NLTK punkt_tab; point it at the local copy."""
    if path.is_dir():
        os.environ["NLTK_DATA"] = str(path)
        try:
            import nltk

            if str(path) not in nltk.data.path:
                nltk.data.path.insert(0, str(path))
        except ImportError:  # pragma: no cover
            pass
