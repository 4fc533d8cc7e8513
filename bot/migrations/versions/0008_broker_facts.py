"""broker facts — issue 19 (every broker statement checked against IBKR's documentation)

Create Date: 2026-12-01 06:00:00

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
"""

from alembic import op

from bot.migrations.columns import boolean, string
from bot.migrations.kit import add_columns, drop_columns


def upgrade() -> None:
    add_columns("trader_profile", boolean("dsc_plus_eligible", default=False))
    add_columns("automation", string("session_host", 64, default=""), boolean("person_logs_in", default=False))
    op.execute(
        "UPDATE second_factor SET last_verified_at = NULL, verified_by = NULL, unverified_reason = NULL "
        "WHERE verified_by = 'drill'"
    )


def downgrade() -> None:
    drop_columns("automation", "person_logs_in", "session_host")
    drop_columns("trader_profile", "dsc_plus_eligible")


# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
