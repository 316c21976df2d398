"""`diarq keys create|list|revoke`: API keys, administered on a machine that can reach
the database (DIARQ_DATABASE_URL). The key is printed once, alone on stdout, so
`KEY=$(diarq keys create --name ci)` captures it; everything else goes to stderr."""

from __future__ import annotations

import click

from diarq.shared.settings import get_settings


@click.group("keys")
def keys_group() -> None:
    """API keys (Bearer) for the HTTP API."""


@keys_group.command("create")
@click.option("--name", required=True, help="Who or what uses the key (shown in `list`).")
@click.option("--operator", is_flag=True,
              help="An operator's key: also sees worker names and hosts (GET /v1/workers, "
                   "a job's worker).")
def create_cmd(name: str, operator: bool) -> None:
    """Create a key and print it once (only its digest is stored)."""
    from diarq.shared.keystore import create_key

    info, key = create_key(get_settings(), name, operator=operator)
    role = " role=operator" if info.operator else ""
    click.echo(f"created key id={info.id} prefix={info.prefix} name={info.name!r}{role}; it is "
               "shown only now: store it, clients send 'Authorization: Bearer <key>'", err=True)
    click.echo(key)


@keys_group.command("list")
def list_cmd() -> None:
    """Keys with id, prefix, name, created and revoked times (never the key)."""
    from diarq.shared.keystore import list_keys

    rows = list_keys(get_settings())
    if not rows:
        click.echo("no keys; create one with `diarq keys create --name NAME`", err=True)
        return
    click.echo("id\tprefix\tstatus\trole\tcreated_at\trevoked_at\tname")
    for k in rows:
        status = "revoked" if k.revoked_at else "active"
        role = "operator" if k.operator else "client"
        revoked = k.revoked_at.isoformat() if k.revoked_at else "-"
        click.echo(f"{k.id}\t{k.prefix}\t{status}\t{role}\t{k.created_at.isoformat()}\t"
                   f"{revoked}\t{k.name}")


@keys_group.command("revoke")
@click.argument("id_or_prefix")
def revoke_cmd(id_or_prefix: str) -> None:
    """Revoke a key by id or prefix; requests with it get 401 from then on."""
    from diarq.shared.keystore import revoke_key

    info = revoke_key(get_settings(), id_or_prefix)
    click.echo(f"revoked key id={info.id} prefix={info.prefix} name={info.name!r}", err=True)


def register(group: click.Group) -> None:
    group.add_command(keys_group)
