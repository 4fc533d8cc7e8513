"""escalation truth — issue 8 (escalations that tell the truth)

Create Date: 2026-11-30 05:30:00

- ``desk.grace_minutes``: a checklist posted late gets at least this long (default 15).
- ``checklist_run.scheduled_deadline_at``: the desk's own deadline for the day; ``deadline_at``
  becomes the *effective* deadline (later when the post was late). Existing runs were posted
  under the old rule, so both are the same: filled from ``deadline_at``.
- ``answer.permission_gaps``: whether a trading permission or a market-data subscription is
  missing (empty for answers recorded before the question existed).
- ``escalation.kind`` widened to 32 characters (``secondary_interface``).

No stored answer is rewritten: recorded contingency gaps (``second_mfa_device``,
``recovery_code``) and the platform ``api`` keep their recorded values and labels, so the
hash-chained export of past days is unchanged. Escalations opened under the old rule (a
"No recovery code" alone counted as a missing recovery path) are resolved by the running
bot at its next escalation pass, which updates the managers' messages and the pager; a
migration cannot do that.
"""

from alembic import op

from bot.migrations.columns import integer, string, utc
from bot.migrations.kit import add_columns, alter_length, drop_columns


def upgrade() -> None:
    add_columns("desk", integer("grace_minutes", default=15))
    add_columns("checklist_run", utc("scheduled_deadline_at", nullable=True))
    op.execute("UPDATE checklist_run SET scheduled_deadline_at = deadline_at WHERE scheduled_deadline_at IS NULL")
    add_columns("answer", string("permission_gaps", 64, default=""))
    alter_length("escalation", "kind", 16, 32)


def downgrade() -> None:
    alter_length("escalation", "kind", 32, 16)
    drop_columns("answer", "permission_gaps")
    drop_columns("checklist_run", "scheduled_deadline_at")
    drop_columns("desk", "grace_minutes")


# revision identifiers, used by Alembic.
revision = "0002"
down_revision = "0001"
