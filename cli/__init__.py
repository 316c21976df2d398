"""The ``diarq`` command. Sub-commands live in sibling modules, each exposing
``register(group)``; heavy imports (torch, models) happen inside the commands so
``diarq --help`` and the API stay light."""

from __future__ import annotations

import sys

import click

from diarq.cli import batch, client, doctor, keys, models, process, service
from diarq.shared.errors import DiarqError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """diarq: who said what, when."""
    from diarq.shared.logging import setup_logging

    # warnings of every command go through the redacting handler (no token in the output);
    # `diarq worker` and the API raise the level to DIARQ_LOG_LEVEL themselves
    setup_logging("WARNING")


for _module in (batch, client, doctor, keys, models, process, service):
    _module.register(cli)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DiarqError as exc:
        click.echo(f"error [{exc.code}]: {exc.message}", err=True)
        sys.exit(2)
    except SystemExit:
        raise
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
