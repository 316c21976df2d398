"""Speaker diarization behind one interface: ``load_diarizer(settings) -> Diarizer``.

``backends`` builds the configured pipeline (offline or hub), ``diarizer`` runs it;
the offline pipeline's parts are ``offline_pipeline``, ``clustering`` and ``ge2e``.
"""

from diarq.worker.diarization.backends import load_diarizer, load_hub_diarizer
from diarq.worker.diarization.diarizer import Diarizer

__all__ = ["Diarizer", "load_diarizer", "load_hub_diarizer"]
