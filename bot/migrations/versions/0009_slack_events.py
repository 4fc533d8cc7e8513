"""slack events — issue 18 (Slack's rules across processes)

slack_event: the Events API ``event_id`` of every event handled, kept an hour, so Slack's
retries of it are acknowledged and skipped on every replica (bot.events_once).
pending_post: posts whose outcome is unknown (a timeout, a 5xx, a process that died), so a
retry looks for the message in the channel and adopts it instead of posting twice
(bot.delivery.ledger).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import bot.dbtypes

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slack_event",
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("received_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("slack_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slack_event_received_at"), ["received_at"], unique=False)
    op.create_table(
        "pending_post",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("started_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("pending_post", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_post_started_at"), ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pending_post", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_post_started_at"))
    op.drop_table("pending_post")
    with op.batch_alter_table("slack_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slack_event_received_at"))
    op.drop_table("slack_event")
