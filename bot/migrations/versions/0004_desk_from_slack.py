"""desk from slack — issue 12 (names, desk settings, away)

Create Date: 2026-11-30 05:30:00

away: a trader away from one date to another (no reminder, no escalation); slack_user: one
Slack user as last seen through ``users.info`` or a ``user_change`` event.
"""

from bot.migrations.columns import boolean, date, id_column, string, utc
from bot.migrations.kit import create_table, drop_table, index, indexed


def upgrade() -> None:
    create_table(
        "away",
        id_column(),
        string("user_id", 32),
        date("start"),
        date("end"),
        string("note", 200, nullable=True),
        string("set_by", 32),
        utc("created_at"),
        index("ix_away_user_end", "user_id", "end"),
    )
    create_table(
        "slack_user",
        string("user_id", 32),
        string("display_name", 255),
        string("real_name", 255),
        string("handle", 255),
        string("tz", 64, nullable=True),
        boolean("deleted"),
        boolean("is_admin"),
        boolean("is_owner"),
        boolean("is_bot"),
        utc("fetched_at"),
        string("error", 64, nullable=True),
        indexed("fetched_at"),
        primary_key="user_id",
    )


def downgrade() -> None:
    drop_table("slack_user", indexed("fetched_at"))
    drop_table("away", index("ix_away_user_end", "user_id", "end"))


# revision identifiers, used by Alembic.
revision = "0004"
down_revision = "0003"
