"""workers register themselves (state, models, last error, heartbeat); operator keys

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        # the Celery node name (diarq@<host>-<pid> unless --hostname says otherwise)
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("profile", sa.String(length=16), nullable=False),
        sa.Column("models", sa.JSON(), nullable=True),
        sa.Column("device", sa.String(length=16), nullable=True),
        # starting | ready | stopped (busy and lost are derived when read)
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_workers_heartbeat", "workers", ["heartbeat_at"])
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        # operators' keys see worker names and hosts (GET /v1/workers, a job's worker)
        batch_op.add_column(sa.Column("operator", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("operator")
    op.drop_index("ix_workers_heartbeat", table_name="workers")
    op.drop_table("workers")
