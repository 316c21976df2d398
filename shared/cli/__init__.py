"""The ``diarq`` command. Sub-commands live in sibling modules, each exposing
``register(group)``; heavy imports (torch, models) happen inside the commands so
``diarq --help`` and the API stay light."""

from __future__ import annotations

import importlib
import sys

import click

from shared.errors import DiarqError

# module name -> registers its commands on the group
COMMAND_MODULES = ("models", "process", "doctor", "service", "client", "keys", "batch")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """diarq: who said what, when."""
    from shared.logging import setup_logging

    # warnings of every command go through the redacting handler (no token in the output);
    # `diarq worker` and the API raise the level to DIARQ_LOG_LEVEL themselves
    setup_logging("WARNING")


for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"shared.cli.{_name}")
    except ModuleNotFoundError as _exc:  # a module not written yet
        if _exc.name != f"shared.cli.{_name}":
            raise
        continue
    _mod.register(cli)


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
