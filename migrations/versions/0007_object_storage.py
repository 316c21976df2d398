"""object storage: direct uploads, retention marks on jobs

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-01 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("object_key", sa.String(length=500), nullable=False),
        sa.Column("filename", sa.String(length=1000), nullable=True),
        sa.Column("declared_bytes", sa.BigInteger(), nullable=True),
        # the client's SHA-256 of the file (checked against the object)
        sa.Column("declared_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        # the job that used this upload (set in that job's transaction; at most one)
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_uploads_expires", "uploads", ["expires_at"])
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        # retention (DIARQ_RETENTION_DAYS): when the reaper deleted the audio / result
        batch_op.add_column(sa.Column("audio_purged_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("result_purged_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index("ix_jobs_finished", ["finished_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_finished")
        batch_op.drop_column("result_purged_at")
        batch_op.drop_column("audio_purged_at")
    op.drop_index("ix_uploads_expires", table_name="uploads")
    op.drop_table("uploads")
