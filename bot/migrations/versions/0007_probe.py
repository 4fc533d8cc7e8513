"""probe — issue 19 part 2 (evidence from the broker: probe endpoints and their results)

Create Date: 2026-12-01 06:00:00

probe_endpoint: a place to ask whether a trader's (or an automation's) session is alive;
probe_result: one probe's outcome (kept 30 days).
"""

from bot.migrations.columns import boolean, id_column, integer, string, utc
from bot.migrations.kit import create_table, drop_table, fk, index, indexed, unique


def upgrade() -> None:
    create_table(
        "probe_endpoint",
        id_column(),
        integer("desk_id"),
        string("trader_id", 32),
        integer("automation_id", nullable=True),
        string("label", 64),
        string("kind", 16),
        string("host", 253),
        integer("port"),
        string("path", 200),
        string("tls", 16, nullable=True),
        string("ca_bundle", 1000, nullable=True),
        string("created_by", 32),
        utc("created_at"),
        fk("automation_id", "automation"),
        fk("desk_id", "desk"),
        unique("desk_id", "label"),
        indexed("desk_id", "trader_id"),
    )
    create_table(
        "probe_result",
        id_column(),
        integer("endpoint_id"),
        utc("checked_at"),
        string("state", 24),
        boolean("healthy"),
        string("detail", 300),
        string("address", 64, nullable=True),
        string("server_version", 64, nullable=True),
        utc("session_expires_at", nullable=True),
        fk("endpoint_id", "probe_endpoint"),
        index("ix_probe_result_endpoint_checked", "endpoint_id", "checked_at"),
    )


def downgrade() -> None:
    drop_table("probe_result", index("ix_probe_result_endpoint_checked", "endpoint_id", "checked_at"))
    drop_table("probe_endpoint", indexed("desk_id", "trader_id"))


# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
