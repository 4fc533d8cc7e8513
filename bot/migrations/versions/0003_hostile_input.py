"""hostile input — issue 9 (hostile input, replay, signed export)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 05:30:00

seen_interaction: every state-changing Slack interaction acted on, kept an hour, so a
replayed request (same signed bytes) is refused on every replica (bot.interactions).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import bot.dbtypes

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seen_interaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("seen_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("seen_interaction", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seen_interaction_seen_at"), ["seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("seen_interaction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seen_interaction_seen_at"))
    op.drop_table("seen_interaction")
