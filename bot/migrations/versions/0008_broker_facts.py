"""broker facts — issue 19 (every broker statement checked against IBKR's documentation)

- trader_profile.dsc_plus_eligible: the desk declares that the account's equity is at least
  USD 1 million, so IBKR offers it a Digital Security Card+ (the elevated tier asks two
  independent backups only of traders who can hold them).
- automation.session_host / automation.person_logs_in: what decides whether two logins on one
  username compete (a second brokerage session does; API clients of one TWS / IB Gateway don't).
- A drill pass is no longer an IBKR method's verification: the drill proves the backup device
  produces IB Preflight's own codes, not that IBKR's Mobile Authenticator entry is active. The
  stamps it left on second_factor (verified_by = 'drill') are cleared; the drill's own time stays
  in totp_enrollment.last_success_at, which the recovery rule reads as a separate fact. That
  data step is not undone by the downgrade.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trader_profile", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dsc_plus_eligible", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("automation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_host", sqlmodel.sql.sqltypes.AutoString(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("person_logs_in", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute(
        "UPDATE second_factor SET last_verified_at = NULL, verified_by = NULL, unverified_reason = NULL "
        "WHERE verified_by = 'drill'"
    )


def downgrade() -> None:
    with op.batch_alter_table("automation", schema=None) as batch_op:
        batch_op.drop_column("person_logs_in")
        batch_op.drop_column("session_host")
    with op.batch_alter_table("trader_profile", schema=None) as batch_op:
        batch_op.drop_column("dsc_plus_eligible")
