"""Per-process model registry: every model loads once per process and is reused.

A Celery worker calls ``get_registry().warm_up()`` after fork (never in the
parent: CTranslate2/torch thread pools do not survive fork). The registry
notices a fork by its pid and starts empty in the child. Device and thread
choices come from diarq.worker.runtime.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from diarq.shared.errors import ModelError
from diarq.shared.settings import Settings, get_settings
from diarq.worker.device import Device, device_for, require_gpu
from diarq.worker.runtime import (
    asr_threads,
    configure_threads,
    resolve_batch_size,
    resolve_compute_type,
    resolve_device,
    set_torch_threads,
)

log = logging.getLogger(__name__)

_lock = threading.Lock()
_registry: ModelRegistry | None = None
_registry_pid: int | None = None


class ModelRegistry:
    """Holds the diarizer, ASR models (by name) and alignment models (by language)."""

    def __init__(self, settings: Settings | None = None, device: Device | None = None) -> None:
        self.settings = settings or get_settings()
        self.device = resolve_device(self.settings.device)
        # the device layer: OOM handling, memory release and figures (worker.device)
        self.gpu = device or device_for(self.device)
        if device is None:
            require_gpu(self.device)  # gpu_unavailable at worker start, not at the first job
        self.compute_type = resolve_compute_type(self.settings.compute_type, self.device)
        self.batch_size = resolve_batch_size(self.settings.batch_size, self.device,
                                             self.gpu.total_memory())
        self.threads = configure_threads(self.settings.threads)
        self.asr_threads = asr_threads(self.threads, self.device)
        self._lock = threading.RLock()
        self._diarizer: Any = None
        self._asr: dict[str, Any] = {}
        self._aligners: dict[str, Any] = {}
        self._voice_encoder: Any = None
        self._nltk_set = False

    def before_torch_stage(self, beside_asr: bool = False) -> None:
        """Re-apply torch's thread count (CTranslate2 can leave it at 1; see runtime);
        ``beside_asr``: a transcription runs at the same time, so torch gets the cores
        CTranslate2 does not use (on 2 cores: one each, nothing oversubscribed)."""
        set_torch_threads(max(1, self.threads - self.asr_threads) if beside_asr
                          else self.threads)

    @property
    def concurrent_stages(self) -> bool:
        """Whether mono jobs transcribe beside the diarization (CPU only; pipeline)."""
        return bool(self.settings.concurrent_stages) and self.device == "cpu"

    # --- diarization --------------------------------------------------------
    def diarizer(self) -> Any:
        with self._lock:
            if self._diarizer is None:
                from diarq.worker.diarization import load_diarizer

                self._diarizer = load_diarizer(self.settings)
            return self._diarizer

    # --- transcription ------------------------------------------------------
    @property
    def uses_alignment_model(self) -> bool:
        """wav2vec2 alignment (WhisperX) only in the hub profile: none exists offline."""
        return self.settings.profile == "hub"

    def asr(self, name: str | None = None) -> Any:
        from diarq.worker.asr import WhisperAsr, resolve_model_path

        name = name or self.settings.asr_model
        with self._lock:
            if name not in self._asr:
                path = resolve_model_path(
                    name, profile=self.settings.profile, model_dir=self.settings.model_dir
                )
                self._asr[name] = WhisperAsr(
                    path,
                    name=name,
                    device=self.device,
                    compute_type=self.compute_type,
                    cpu_threads=self.asr_threads,
                    use_whisperx=self.uses_alignment_model,
                    batch_size=self.batch_size,
                    download_root=str(self.settings.model_dir / "hub"),
                    # stages side by side: the main thread helps with the windows
                    # once the diarization is done (worker/pipeline.py)
                    workers=2 if self.concurrent_stages else 1,
                )
            return self._asr[name]

    def aligner(self, language: str) -> Any:
        from diarq.worker.asr import Aligner, set_nltk_data

        with self._lock:
            if not self._nltk_set:
                set_nltk_data(self.settings.model_dir / "nltk_data")
                self._nltk_set = True
            if language not in self._aligners:
                try:
                    self._aligners[language] = Aligner(
                        language, self.device, model_dir=str(self.settings.model_dir / "hub"),
                        model_name=self.settings.align_model_names.get(language.lower()),
                    )
                except ModelError as exc:
                    # kept: the next job in this language does not try (and wait) again
                    self._aligners[language] = exc
            found = self._aligners[language]
            if isinstance(found, ModelError):
                raise ModelError(found.message, code=found.code)
            return found

    # --- voices -------------------------------------------------------------
    def voice_encoder(self) -> Any:
        """The encoder of voice references (worker/voices.py), loaded on first use: only
        jobs with references need it. Its weights are the offline ECAPA file, which
        `diarq models prepare` assembles in either profile."""
        from diarq.worker.offline_models import offline_model_paths, require_offline_models
        from diarq.worker.voices import VoiceEncoder

        with self._lock:
            if self._voice_encoder is None:
                require_offline_models(self.settings.model_dir, ["diarization"])
                weights = offline_model_paths(self.settings.model_dir).speaker_embedding
                self._voice_encoder = VoiceEncoder(weights, self.device)
            return self._voice_encoder

    # --- lifecycle ----------------------------------------------------------
    def warm_up(self) -> None:
        """Load the default models now (worker start), so the first job does not wait
        and configuration errors surface at start-up."""
        self.diarizer()
        self.asr()
        log.info(
            "models loaded profile=%s asr=%s device=%s compute_type=%s batch_size=%d "
            "threads=%d", self.settings.profile, self.settings.asr_model, self.device,
            self.compute_type, self.batch_size, self.threads,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "profile": self.settings.profile,
            "device": self.device,
            "compute_type": self.compute_type,
            "batch_size": self.batch_size,
            "threads": self.threads,
            "asr_threads": self.asr_threads,
        }


def get_registry(settings: Settings | None = None) -> ModelRegistry:
    """The registry of this process (a forked child gets its own, empty one)."""
    global _registry, _registry_pid
    with _lock:
        if _registry is None or _registry_pid != os.getpid():
            _registry = ModelRegistry(settings)
            _registry_pid = os.getpid()
        return _registry
