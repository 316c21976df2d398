"""web app: playback copy, waveform peaks and speaker names per job; browser sessions

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        # a browser-playable copy of the upload (NULL: the upload plays as it is)
        batch_op.add_column(sa.Column("playback_path", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("playback_type", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("waveform_path", sa.String(length=500), nullable=True))
        # PATCH /v1/jobs/{id}/speakers: {"SPEAKER_00": "Anna"}, per job
        batch_op.add_column(sa.Column("speaker_names", sa.JSON(), nullable=True))
        # a delete finds the jobs sharing its objects (dedupe copies) by these
        batch_op.create_index("ix_jobs_audio_path", ["audio_path"])
        batch_op.create_index("ix_jobs_playback_path", ["playback_path"])
        batch_op.create_index("ix_jobs_waveform_path", ["waveform_path"])
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_web_sessions_api_key_id", "web_sessions", ["api_key_id"])


def downgrade() -> None:
    op.drop_index("ix_web_sessions_api_key_id", table_name="web_sessions")
    op.drop_table("web_sessions")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for index in ("ix_jobs_waveform_path", "ix_jobs_playback_path", "ix_jobs_audio_path"):
            batch_op.drop_index(index)
        for col in ("speaker_names", "waveform_path", "playback_type", "playback_path"):
            batch_op.drop_column(col)
