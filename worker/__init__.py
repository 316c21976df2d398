"""The worker side: models, the speech pipeline and the Celery tasks around it.

Importing it chooses OpenMP's wait policy before torch loads
(``runtime.set_openmp_wait_policy``): it must come first, and every worker entry
point (the Celery worker, ``diarq process``, the benchmarks) imports this package
before any model code.
"""

from diarq.shared.settings import get_settings as _get_settings
from diarq.worker.runtime import set_openmp_wait_policy as _set_openmp_wait_policy


def _choose_openmp_policy() -> None:
    try:
        settings = _get_settings()
    except Exception:  # noqa: BLE001 (bad settings are reported where they are used)
        return
    _set_openmp_wait_policy(settings.concurrent_stages, settings.device)


_choose_openmp_policy()
