"""escalation truth — issue 8 (escalations that tell the truth)

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

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import bot.dbtypes

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("desk", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grace_minutes", sa.Integer(), server_default="15", nullable=False))
    with op.batch_alter_table("checklist_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scheduled_deadline_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE checklist_run SET scheduled_deadline_at = deadline_at WHERE scheduled_deadline_at IS NULL")
    with op.batch_alter_table("answer", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("permission_gaps", sqlmodel.sql.sqltypes.AutoString(length=64), server_default="", nullable=False)
        )
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.alter_column(
            "kind",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=16),
            type_=sqlmodel.sql.sqltypes.AutoString(length=32),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.alter_column(
            "kind",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=32),
            type_=sqlmodel.sql.sqltypes.AutoString(length=16),
            existing_nullable=False,
        )
    with op.batch_alter_table("answer", schema=None) as batch_op:
        batch_op.drop_column("permission_gaps")
    with op.batch_alter_table("checklist_run", schema=None) as batch_op:
        batch_op.drop_column("scheduled_deadline_at")
    with op.batch_alter_table("desk", schema=None) as batch_op:
        batch_op.drop_column("grace_minutes")
