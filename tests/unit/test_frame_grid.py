"""Values of one frame-level feature moved onto another's frames (the overlap count)."""

from __future__ import annotations

import numpy as np
from pyannote.core import SlidingWindow, SlidingWindowFeature

from diarq.worker.diarization.offline_pipeline import _on_grid

STEP = 0.017


def _feature(start_frame: int, values: list[int]) -> SlidingWindowFeature:
    window = SlidingWindow(start=start_frame * STEP, duration=STEP, step=STEP)
    return SlidingWindowFeature(np.array(values, dtype=np.uint8)[:, None], window)


def test_values_land_on_the_frames_they_cover() -> None:
    grid = _feature(0, [0] * 6)
    later = _on_grid(_feature(2, [1, 2, 3]), grid)
    assert later[:, 0].tolist() == [0, 0, 1, 2, 3, 0]
    earlier = _on_grid(_feature(-2, [1, 2, 3, 4, 5, 6, 7, 8, 9]), grid)
    assert earlier[:, 0].tolist() == [3, 4, 5, 6, 7, 8]
    assert later.shape == grid.data.shape and later.dtype == np.uint8


def test_no_common_frames_gives_zeros() -> None:
    grid = _feature(0, [0] * 4)
    assert not _on_grid(_feature(10, [1, 1]), grid).any()
    assert not _on_grid(_feature(-5, [1, 1]), grid).any()
