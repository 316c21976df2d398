"""``diarq process FILE``: run the pipeline locally, no service needed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from diarq.cli.client import pipeline_options
from diarq.shared.hashing import sha256_file
from diarq.shared.renderers import FORMATS


def _progress_bar():  # type: ignore[no-untyped-def]
    """A tqdm bar on stderr: one bar per stage, percent of that stage."""
    from tqdm import tqdm

    state: dict[str, object] = {"stage": None, "bar": None}

    def update(stage: str, fraction: float) -> None:
        bar = state["bar"]
        if stage != state["stage"]:
            if bar is not None:
                bar.close()  # type: ignore[attr-defined]
            bar = tqdm(total=100, desc=f"{stage:<10}", unit="%", file=sys.stderr,
                       bar_format="{desc} {bar} {n:3.0f}% [{elapsed}]", leave=True)
            state["stage"], state["bar"] = stage, bar
        bar.n = round(fraction * 100, 1)  # type: ignore[attr-defined]
        bar.refresh()  # type: ignore[attr-defined]

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()  # type: ignore[attr-defined]

    return update, close


@click.command("process")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@pipeline_options
@click.option("--participants", help='Names in order of first appearance: "Anna, Boris" or a '
              'JSON list: [{"name": "Anna"}, {"name": "Boris"}] or ["Anna", "Boris"].')
@click.option("--prompt", help="Initial prompt: names, terms, spelling the model should use.")
@click.option("--reference", "references", multiple=True, metavar="NAME=FILE",
              help="A 2-10 s recording of one person: the speaker with that voice is named "
                   "NAME (repeat, up to 4).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="txt", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write here instead of standard output.")
@click.option("--timeline", type=click.Path(path_type=Path, dir_okay=False),
              help="Also draw who spoke when into this PNG.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def process(
    file: Path,
    num_speakers: int | None,
    min_speakers: int | None,
    max_speakers: int | None,
    language: str | None,
    participants: str | None,
    prompt: str | None,
    hotwords: str | None,
    multichannel: bool,
    references: tuple[str, ...],
    asr_model: str | None,
    no_diarize: bool,
    no_align: bool,
    fmt: str,
    output: Path | None,
    timeline: Path | None,
    quiet: bool,
) -> None:
    """Transcribe FILE with speakers (who said what, when)."""
    from diarq.shared.options import check_multichannel, parse_options

    named = [_reference(spec) for spec in references]
    # validate everything before loading any model
    options = parse_options(
        {
            "num_speakers": num_speakers,
            "min_speakers": min_speakers,
            "max_speakers": max_speakers,
            "language": language,
            "participants": participants,
            "prompt": prompt,
            "hotwords": hotwords,
            "multichannel": multichannel,
            "speaker_references": [{"name": n, "sha256": sha256_file(f)} for n, f in named]
            or None,
            "asr_model": asr_model,
            "diarize": not no_diarize,
            "align": not no_align,
        }
    )
    from diarq.shared.media import probe_audio

    # missing / empty / not audio / mono with --multichannel: fail now, before models load
    check_multichannel(options, probe_audio(file).channels, file.name)
    for _, ref in named:
        probe_audio(ref)

    from diarq.shared.renderers import render
    from diarq.worker.pipeline import run_pipeline

    update, close = _progress_bar() if not quiet else (None, lambda: None)
    try:
        result = run_pipeline(file, options, progress=update, job_id=file.stem,
                              references=[f for _, f in named])
    finally:
        close()
    text = render(result, fmt)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
    if timeline is not None:
        from diarq.shared.timeline import draw_timeline

        draw_timeline(result, timeline)
        click.echo(f"wrote {timeline}", err=True)
    t = result.timings
    if not quiet and result.audio.duration:
        click.echo(
            f"{result.audio.duration:.1f} s of audio in {t.get('total', 0):.1f} s "
            f"(real-time factor {t.get('total', 0) / result.audio.duration:.3f}); "
            + (f"{len(result.speakers)} speakers" if options.diarize else "no diarization")
            + f", language {result.language or '-'}",
            err=True,
        )


def _reference(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise click.BadParameter("use NAME=FILE, e.g. --reference Anna=anna.wav",
                                 param_hint="--reference")
    return name.strip(), Path(path.strip())


def register(group: click.Group) -> None:
    group.add_command(process)
