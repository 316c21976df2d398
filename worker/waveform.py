"""Waveform peaks of a recording, computed once by the worker from the 16 kHz samples it
decodes anyway, so a browser draws a 2-hour meeting without decoding its audio.

Format: BBC audiowaveform's binary format, version 1 (also read by peaks.js): a 20-byte
little-endian header (int32 version = 1, uint32 flags = 1 for 8-bit values, int32
sample rate, int32 samples per pixel, uint32 number of pairs), then one (min, max) pair
of int8 per ``samples_per_pixel`` samples. At 160 samples (10 ms) per pair a 2-hour
recording takes 1.4 MB.
"""

from __future__ import annotations

import struct

import numpy as np

from diarq.shared.media import SAMPLE_RATE

VERSION = 1
FLAG_8_BIT = 1
HEADER = struct.Struct("<iIiiI")
SAMPLES_PER_PAIR = SAMPLE_RATE // 100  # 10 ms


def peaks(audio: np.ndarray, samples_per_pair: int = SAMPLES_PER_PAIR) -> np.ndarray:
    """(n, 2) int8 min/max of each ``samples_per_pair`` block of float samples in [-1, 1]
    (the last block may be shorter)."""
    n = -(-len(audio) // samples_per_pair)
    out = np.zeros((n, 2), dtype=np.int8)
    if n == 0:
        return out
    full = len(audio) // samples_per_pair
    # in slices: min/max of a reshaped view costs no copy of a 2-hour buffer (460 MB)
    step = 1 << 16
    for i in range(0, full, step):
        j = min(i + step, full)
        blocks = audio[i * samples_per_pair:j * samples_per_pair].reshape(j - i, -1)
        out[i:j, 0] = _to_int8(blocks.min(axis=1))
        out[i:j, 1] = _to_int8(blocks.max(axis=1))
    if full < n:
        tail = audio[full * samples_per_pair:]
        out[full] = (_to_int8(np.array([tail.min()]))[0], _to_int8(np.array([tail.max()]))[0])
    return out


def _to_int8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values * 127.0), -128, 127).astype(np.int8)


def encode(pairs: np.ndarray, *, sample_rate: int = SAMPLE_RATE,
           samples_per_pair: int = SAMPLES_PER_PAIR) -> bytes:
    """The audiowaveform v1 file of (n, 2) int8 ``pairs``."""
    header = HEADER.pack(VERSION, FLAG_8_BIT, sample_rate, samples_per_pair, len(pairs))
    return header + np.ascontiguousarray(pairs, dtype=np.int8).tobytes()


def decode(data: bytes) -> tuple[int, int, np.ndarray]:
    """(sample rate, samples per pair, (n, 2) int8 pairs) of an audiowaveform v1 file."""
    version, flags, rate, per_pair, n = HEADER.unpack_from(data)
    if version != VERSION or flags != FLAG_8_BIT:
        raise ValueError("not an 8-bit audiowaveform version 1 file")
    body = np.frombuffer(data, dtype=np.int8, offset=HEADER.size, count=2 * n)
    return rate, per_pair, body.reshape(n, 2)


def waveform_file(audio: np.ndarray) -> bytes:
    """The peaks file of 16 kHz samples: mono, or (channels, samples) of a multichannel
    job, drawn as one waveform (each pair spans what any channel reaches)."""
    if audio.ndim == 1:
        return encode(peaks(audio))
    tracks = [peaks(track) for track in audio]
    pairs = np.stack([np.min([t[:, 0] for t in tracks], axis=0),
                      np.max([t[:, 1] for t in tracks], axis=0)], axis=1)
    return encode(pairs)
