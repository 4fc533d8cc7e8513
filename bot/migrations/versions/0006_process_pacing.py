"""process pacing — issue 11 (one Slack sending budget for every process: delivery_pacer)

Create Date: 2026-11-30 06:00:00

delivery_pacer: the sending budget of one service (``slack``), shared by every thread, process
and replica that delivers (bot.delivery.pacing.SharedPacer).
"""

from bot.migrations.columns import real, string
from bot.migrations.kit import create_table, drop_table


def upgrade() -> None:
    create_table(
        "delivery_pacer",
        string("service", 32),
        real("next_at"),
        real("spacing"),
        real("limited_at"),
        real("busy_until"),
        primary_key="service",
    )


def downgrade() -> None:
    drop_table("delivery_pacer")


# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
