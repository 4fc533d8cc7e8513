"""slack events — issue 18 (Slack's rules across processes)

Create Date: 2026-12-02 06:00:00

slack_event: the Events API ``event_id`` of every event handled, kept an hour, so Slack's
retries of it are acknowledged and skipped on every replica (bot.events_once).
pending_post: posts whose outcome is unknown (a timeout, a 5xx, a process that died), so a
retry looks for the message in the channel and adopts it instead of posting twice
(bot.delivery.ledger).
"""

from bot.migrations.columns import id_column, string, utc
from bot.migrations.kit import create_table, drop_table, indexed, unique


def upgrade() -> None:
    create_table(
        "slack_event",
        string("event_id", 64),
        utc("received_at"),
        indexed("received_at"),
        primary_key="event_id",
    )
    create_table(
        "pending_post",
        id_column(),
        string("key", 200),
        string("channel", 32),
        utc("started_at"),
        unique("key"),
        indexed("started_at"),
    )


def downgrade() -> None:
    drop_table("pending_post", indexed("started_at"))
    drop_table("slack_event", indexed("received_at"))


# revision identifiers, used by Alembic.
revision = "0009"
down_revision = "0008"
