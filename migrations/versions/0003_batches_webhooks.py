"""batches, result reuse (dedupe), priorities and webhook deliveries

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("webhook_url", sa.String(length=2000), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_sha256", sa.String(length=64), nullable=True),
        # entries of the upload that are not audio: [{"name", "reason"}]
        sa.Column("rejected", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("api_key_id", "idempotency_key", name="uq_batches_idempotency"),
    )
    op.create_index("ix_batches_api_key_created", "batches", ["api_key_id", "created_at"])
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.String(length=36), nullable=True))
        # path of the recording inside the batch upload (display and results.zip names)
        batch_op.add_column(sa.Column("source_name", sa.String(length=1000), nullable=True))
        # high=0, normal=5, low=9 (Celery/Redis priority semantics: lower runs first)
        batch_op.add_column(
            sa.Column("priority", sa.Integer(), nullable=False, server_default="5")
        )
        batch_op.add_column(sa.Column("webhook_url", sa.String(length=2000), nullable=True))
        # sha256 of the canonical options JSON: with audio_sha256 the dedupe key
        batch_op.add_column(sa.Column("options_sha256", sa.String(length=64), nullable=True))
        # dedupe hit: this job's result is the result row of that job
        batch_op.add_column(sa.Column("result_job_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("request_sha256", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            "fk_jobs_batch_id", "batches", ["batch_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index("ix_jobs_batch_id", ["batch_id"], unique=False)
        batch_op.create_index("ix_jobs_dedupe", ["audio_sha256", "options_sha256"], unique=False)
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        # signing secret for webhooks (not a credential for diarq itself)
        batch_op.add_column(sa.Column("webhook_secret", sa.String(length=100), nullable=True))
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("batch_id", sa.String(length=36), nullable=True),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_deliveries_job", "webhook_deliveries", ["job_id", "id"])
    op.create_index("ix_webhook_deliveries_batch", "webhook_deliveries", ["batch_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_batch", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_job", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("webhook_secret")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_dedupe")
        batch_op.drop_index("ix_jobs_batch_id")
        batch_op.drop_constraint("fk_jobs_batch_id", type_="foreignkey")
        for col in ("request_sha256", "result_job_id", "options_sha256", "webhook_url",
                    "priority", "source_name", "batch_id"):
            batch_op.drop_column(col)
    op.drop_index("ix_batches_api_key_created", table_name="batches")
    op.drop_table("batches")
