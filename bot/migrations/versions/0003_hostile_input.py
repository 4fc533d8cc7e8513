"""hostile input — issue 9 (hostile input, replay, signed export)

Create Date: 2026-11-30 05:30:00

seen_interaction: every state-changing Slack interaction acted on, kept an hour, so a
replayed request (same signed bytes) is refused on every replica (bot.interactions).
"""

from bot.migrations.columns import id_column, string, utc
from bot.migrations.kit import create_table, drop_table, indexed, unique


def upgrade() -> None:
    create_table(
        "seen_interaction",
        id_column(),
        string("key", 64),
        string("kind", 32),
        string("user_id", 32),
        utc("seen_at"),
        unique("key"),
        indexed("seen_at"),
    )


def downgrade() -> None:
    drop_table("seen_interaction", indexed("seen_at"))


# revision identifiers, used by Alembic.
revision = "0003"
down_revision = "0002"
