"""Waveform peaks (worker/waveform.py): min/max per 10 ms in BBC audiowaveform's binary
format v1, checked against a direct computation and the format's header layout."""

from __future__ import annotations

import struct

import numpy as np

from diarq.worker.waveform import SAMPLES_PER_PAIR, decode, encode, peaks, waveform_file


def test_min_max_per_block_and_a_short_tail() -> None:
    rng = np.random.default_rng(0)
    audio = rng.uniform(-1, 1, 16000 * 3 + 37).astype(np.float32)
    pairs = peaks(audio)
    assert pairs.shape == (301, 2) and pairs.dtype == np.int8
    for k in (0, 150, 299):
        block = audio[k * 160:(k + 1) * 160]
        assert pairs[k, 0] == round(block.min() * 127)
        assert pairs[k, 1] == round(block.max() * 127)
    tail = audio[300 * 160:]
    assert tuple(pairs[300]) == (round(tail.min() * 127), round(tail.max() * 127))


def test_clipping_and_silence() -> None:
    loud = np.array([-3.0, 2.0] * 80, dtype=np.float32)
    assert tuple(peaks(loud)[0]) == (-128, 127)
    assert not peaks(np.zeros(16000, dtype=np.float32)).any()
    assert peaks(np.zeros(0, dtype=np.float32)).shape == (0, 2)


def test_file_header_is_audiowaveform_v1_8_bit() -> None:
    audio = np.sin(np.linspace(0, 100, 16000)).astype(np.float32)
    data = waveform_file(audio)
    version, flags, rate, per_pair, n = struct.unpack_from("<iIiiI", data)
    assert (version, flags, rate, per_pair, n) == (1, 1, 16000, SAMPLES_PER_PAIR, 100)
    assert len(data) == 20 + 2 * n
    rate, per_pair, pairs = decode(data)
    assert np.array_equal(pairs, peaks(audio))
    assert decode(encode(pairs))[2].shape == (100, 2)


def test_two_hours_is_compact() -> None:
    # 2 h at 16 kHz: 720 000 pairs, 1.44 MB (what the page downloads instead of audio)
    n = 2 * 3600 * 100
    assert len(encode(np.zeros((n, 2), dtype=np.int8))) == 20 + 2 * n


def test_multichannel_draws_what_any_channel_reaches() -> None:
    # a multichannel job decodes to (channels, samples): one waveform spans both
    left = np.zeros(1600, dtype=np.float32)
    right = np.zeros(1600, dtype=np.float32)
    left[:160] = 0.5  # pair 0: only the left channel is loud (upwards)
    right[160:320] = -0.25  # pair 1: only the right one (downwards)
    _rate, _per_pair, pairs = decode(waveform_file(np.stack([left, right])))
    assert pairs.shape == (10, 2)
    assert tuple(pairs[0]) == (0, round(0.5 * 127))
    assert tuple(pairs[1]) == (round(-0.25 * 127), 0)
    assert not pairs[2:].any()
