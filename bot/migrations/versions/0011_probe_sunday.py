"""probe sunday — issue 19 part 2 (the broker probe's leftovers)

Create Date: 2026-12-04 06:00:00

- desk.sunday_evening: the desk trades Sunday evening (futures, FX), so its broker probes run on
  Sunday after IBKR's weekly re-authentication and reset window, before IBKR's FX week opens
  (bot.probe.sunday).
- uq_escalation_standing_open: at most one open (or acknowledged) standing PROBE_FAILED
  escalation per desk and trader — a partial unique index (SQLite and PostgreSQL both have
  them), so two processes probing the same failing endpoint open exactly one
  (bot.escalation.opening.open_escalation with no run: INSERT ... ON CONFLICT DO NOTHING).
"""

import sqlalchemy as sa
from alembic import op

from bot.migrations.columns import boolean
from bot.migrations.kit import add_columns, drop_columns

# The model's condition (bot.escalation.models.STANDING_OPEN_WHERE), frozen here.
WHERE = "run_id IS NULL AND kind = 'probe_failed' AND state IN ('open', 'acknowledged')"


def upgrade() -> None:
    # A plain ADD COLUMN, not batch mode: on SQLite batch mode would copy the desk table, and
    # dropping the old one cascades to every row that references a desk (escalations included).
    add_columns("desk", boolean("sunday_evening", default=False), batch=False)
    # Two open PROBE_FAILED escalations of one trader (a race before this index) would stop it
    # being created: keep the first, resolve the others as duplicates.
    op.execute(
        "UPDATE escalation SET state = 'resolved', resolved_at = opened_at, resolution_note = 'a duplicate of an earlier probe escalation' "
        f"WHERE {WHERE} AND id NOT IN (SELECT MIN(e.id) FROM escalation e WHERE e.run_id IS NULL "
        "AND e.kind = 'probe_failed' AND e.state IN ('open', 'acknowledged') GROUP BY e.desk_id, e.trader_id)"
    )
    op.create_index(
        "uq_escalation_standing_open",
        "escalation",
        ["desk_id", "trader_id", "kind"],
        unique=True,
        sqlite_where=sa.text(WHERE),
        postgresql_where=sa.text(WHERE),
    )


def downgrade() -> None:
    op.drop_index("uq_escalation_standing_open", table_name="escalation")
    drop_columns("desk", "sunday_evening", batch=False)  # SQLite 3.35+: ALTER TABLE ... DROP COLUMN


# revision identifiers, used by Alembic.
revision = "0011"
down_revision = "0010"
