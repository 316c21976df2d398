"""Who spoke when, as a PNG: one lane per speaker, bars for their turns."""

from __future__ import annotations

from pathlib import Path

from diarq.shared.result import Result


def draw_timeline(result: Result, path: Path, *, width_in: float = 12.0) -> None:
    """Draw the diarization turns (or, without them, the transcript segments) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    spans: dict[str, list[tuple[float, float]]] = {}
    order = [s.id for s in result.speakers]
    if result.diarization:
        for t in result.diarization:
            spans.setdefault(t.speaker, []).append((t.start, t.end - t.start))
    else:
        for seg in result.segments:
            key = seg.speaker or "speech"
            spans.setdefault(key, []).append((seg.start, seg.end - seg.start))
    order += [k for k in spans if k not in order]

    height = 1.0 + 0.5 * max(len(order), 1)
    fig, ax = plt.subplots(figsize=(width_in, height))
    colors = plt.get_cmap("tab10")
    for i, spk in enumerate(order):
        ax.broken_barh(spans.get(spk, []), (i - 0.4, 0.8), facecolors=colors(i % 10))
    labels = []
    for spk in order:
        label = result.speaker_label(spk) if spk != "speech" else "speech"
        talk = next((s.talk_time for s in result.speakers if s.id == spk), None)
        labels.append(f"{label} ({talk:.0f} s)" if talk else label)
    ax.set_yticks(range(len(order)), labels)
    ax.invert_yaxis()  # first speaker on top
    ax.set_xlim(0, max(result.audio.duration, 1.0))
    ax.set_xlabel("time (s)")
    ax.set_title(f"who spoke when — {result.job_id or ''}".rstrip(" —"))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
