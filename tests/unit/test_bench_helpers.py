"""Helpers of the bench scripts that figures in BENCHMARKS.md rest on: the MAC count
(bench/diarization_flops.py) and the equal error rate (bench/speaker_pairs.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.diarization_flops import count_macs  # noqa: E402
from bench.speaker_pairs import equal_error_rate  # noqa: E402


def test_convolution_and_linear_layers_count_one_mac_per_weight_and_output_step() -> None:
    model = torch.nn.Sequential(torch.nn.Conv1d(4, 8, 3, dilation=2), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 16, 5))
    # conv: 16 output steps x 8 channels x (4 inputs x 3 taps); linear: 5 x 128
    assert count_macs(model, torch.zeros(2, 4, 20)) == 2 * (16 * 8 * 4 * 3 + 5 * 128)


def test_grouped_convolution_counts_only_its_group() -> None:
    conv = torch.nn.Conv1d(8, 8, 5, groups=4)
    assert count_macs(conv, torch.zeros(1, 8, 14)) == 10 * 8 * 2 * 5


def test_lstm_counts_four_gates_per_layer_and_direction() -> None:
    lstm = torch.nn.LSTM(6, 10, num_layers=2, bidirectional=True, batch_first=True)
    steps, batch = 7, 3
    # layer 1 sees the input (6), layer 2 both directions of layer 1 (20)
    want = 2 * batch * steps * 4 * 10 * ((6 + 10) + (20 + 10))
    assert count_macs(lstm, torch.zeros(batch, steps, 6)) == want
    assert count_macs(torch.nn.LSTM(6, 10), torch.zeros(steps, batch, 6)) == (
        batch * steps * 4 * 10 * 16)


def test_equal_error_rate_of_separated_reversed_and_overlapping_scores() -> None:
    same = np.array([True] * 4 + [False] * 4)
    assert equal_error_rate(same, np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])) == 0.0
    assert equal_error_rate(same, np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])) == 1.0
    # one same-speaker pair below one different pair: one miss and one false accept in 4
    assert equal_error_rate(same, np.array([0.9, 0.8, 0.7, 0.3, 0.5, 0.2, 0.1, 0.0])) == 0.25
