"""The Alembic migrations build exactly the schema the ORM declares (no drift), in one
linear chain of revisions."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from diarq.shared.db import alembic_config, get_engine
from diarq.shared.orm import Base


def test_migrations_match_the_orm(settings) -> None:  # noqa: ANN001 (migrated SQLite)
    with get_engine(settings).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_one_linear_chain_of_revisions(settings) -> None:  # noqa: ANN001
    script = ScriptDirectory.from_config(alembic_config(settings))
    assert len(script.get_heads()) == 1
    seen = [rev.revision for rev in script.walk_revisions()]
    assert len(seen) == len(set(seen))
    assert all(not rev.is_merge_point for rev in script.walk_revisions())
