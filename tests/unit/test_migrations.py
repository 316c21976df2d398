"""The Alembic revisions form one linear chain (issue branches each add a migration; a
merge that leaves two heads fails here). Drift between the migrated schema and the ORM:
tests/integration/test_commands.py::test_migrations_match_the_models."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from diarq.shared.db import alembic_config


def test_one_linear_chain_of_revisions(settings) -> None:  # noqa: ANN001
    script = ScriptDirectory.from_config(alembic_config(settings))
    assert len(script.get_heads()) == 1
    revisions = list(script.walk_revisions())
    assert len({rev.revision for rev in revisions}) == len(revisions)
    assert not any(rev.is_merge_point for rev in revisions)
