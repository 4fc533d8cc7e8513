"""initial schema

Create Date: 2026-11-25 10:56:10.555408

desk and desk_member, checklist_run and the answers given on it, escalation, the outbox of
messages to deliver, weekly_summary, and the audit trail (audit_event).
"""

from bot.migrations.columns import boolean, date, id_column, integer, string, text, utc
from bot.migrations.kit import create_table, drop_table, fk, index, indexed, unique


def upgrade() -> None:
    create_table(
        "desk",
        id_column(),
        string("name", 64),
        string("channel_id", 32),
        string("timezone", 64),
        string("post_at", 5),
        string("deadline", 5),
        utc("created_at"),
        integer("reminder_minutes"),
        integer("ack_timeout_minutes"),
        string("escalation_channel_id", 32, nullable=True),
        string("pager_kind", 16),
        string("pager_url", 500, nullable=True),
        text("pager_secret", nullable=True),
        string("managers_channel_id", 32, nullable=True),
        integer("summary_delay_minutes"),
        unique("name"),
    )
    create_table(
        "audit_event",
        id_column(),
        integer("desk_id", nullable=True),
        utc("at"),
        string("actor", 32, nullable=True),
        string("subject", 64),
        string("action", 32),
        text("detail", default="{}"),
        fk("desk_id", "desk"),
        indexed("at", "desk_id", "subject"),
    )
    create_table(
        "checklist_run",
        id_column(),
        integer("desk_id"),
        date("trading_date"),
        boolean("early_close"),
        string("channel_id", 32),
        utc("post_due_at"),
        utc("deadline_at"),
        utc("market_close_at"),
        utc("created_at"),
        string("message_ts", 32, nullable=True),
        utc("posted_at", nullable=True),
        utc("post_claimed_at", nullable=True),
        integer("post_attempts"),
        string("post_error", 500, nullable=True),
        integer("answers_version"),
        integer("rendered_version"),
        utc("roster_claimed_at", nullable=True),
        fk("desk_id", "desk"),
        unique("desk_id", "trading_date"),
        indexed("desk_id"),
    )
    create_table(
        "desk_member",
        id_column(),
        integer("desk_id"),
        string("user_id", 32),
        string("role", 16),
        fk("desk_id", "desk"),
        unique("desk_id", "user_id", "role"),
        indexed("desk_id", "user_id"),
    )
    create_table(
        "outbox",
        id_column(),
        string("dedup_key", 200),
        string("kind", 32),
        integer("desk_id", nullable=True),
        text("payload"),
        utc("created_at"),
        utc("next_attempt_at"),
        utc("claimed_at", nullable=True),
        integer("attempts"),
        utc("delivered_at", nullable=True),
        utc("failed_at", nullable=True),
        string("last_error", 500, nullable=True),
        text("result", nullable=True),
        fk("desk_id", "desk"),
        unique("dedup_key"),
        indexed("delivered_at", "desk_id", "next_attempt_at"),
    )
    create_table(
        "weekly_summary",
        id_column(),
        integer("desk_id"),
        string("iso_week", 8),
        utc("created_at"),
        utc("claimed_at", nullable=True),
        utc("posted_at", nullable=True),
        string("message_ts", 32, nullable=True),
        fk("desk_id", "desk"),
        unique("desk_id", "iso_week"),
        indexed("desk_id"),
    )
    create_table(
        "answer",
        id_column(),
        integer("run_id"),
        string("user_id", 32),
        integer("version"),
        string("status", 16),
        string("failed_checks", 64),
        string("auth_layer", 16, nullable=True),
        string("platform", 16, nullable=True),
        string("missing_permissions", 500, nullable=True),
        string("contingency_gaps", 100),
        string("note", 500, nullable=True),
        boolean("restricted"),
        utc("created_at"),
        fk("run_id", "checklist_run"),
        unique("run_id", "user_id", "version"),
        index("ix_answer_run_user", "run_id", "user_id"),
    )
    create_table(
        "escalation",
        id_column(),
        integer("desk_id"),
        integer("run_id"),
        string("trader_id", 32),
        string("kind", 16),
        integer("level"),
        string("state", 16),
        text("detail", default=""),
        utc("opened_at"),
        utc("acknowledged_at", nullable=True),
        string("acknowledged_by", 32, nullable=True),
        utc("resolved_at", nullable=True),
        string("resolved_by", 32, nullable=True),
        string("resolution_note", 500, nullable=True),
        utc("level2_at", nullable=True),
        fk("desk_id", "desk"),
        fk("run_id", "checklist_run"),
        unique("run_id", "trader_id", "kind"),
        indexed("desk_id", "run_id", "trader_id"),
    )


def downgrade() -> None:
    drop_table("escalation", indexed("desk_id", "run_id", "trader_id"))
    drop_table("answer", index("ix_answer_run_user", "run_id", "user_id"))
    drop_table("weekly_summary", indexed("desk_id"))
    drop_table("outbox", indexed("delivered_at", "desk_id", "next_attempt_at"))
    drop_table("desk_member", indexed("desk_id", "user_id"))
    drop_table("checklist_run", indexed("desk_id"))
    drop_table("audit_event", indexed("at", "desk_id", "subject"))
    drop_table("desk")


# revision identifiers, used by Alembic.
revision = "0001"
down_revision = None
