"""broker register — issue 19 part 3 (what the register should know)

- automation.second_factor_holder ('person' | 'bot'), automation.account_kind ('live' |
  'paper'), automation.kill_switch_how (who can stop it and how), automation.ip_restricted.
- trader_profile.order_precautions, trader_profile.ip_restricted: the trader's broker-side fences.
- broker_username: a trader's IBKR usernames (never a password).
- desk.security_contact_user / security_contact_text (who to ask for security changes) and
  desk.ip_restrictions (the desk uses the account's IP restrictions).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.dbtypes

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs, not batch mode: on SQLite batch mode would copy the tables, and dropping
    # the old desk table cascades to every row that references a desk.
    op.add_column(
        "automation", sa.Column("second_factor_holder", sa.String(8), server_default="person", nullable=False)
    )
    op.add_column("automation", sa.Column("account_kind", sa.String(8), server_default="live", nullable=False))
    op.add_column("automation", sa.Column("kill_switch_how", sa.String(300), nullable=True))
    op.add_column("automation", sa.Column("ip_restricted", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column(
        "trader_profile", sa.Column("order_precautions", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("trader_profile", sa.Column("ip_restricted", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("desk", sa.Column("security_contact_user", sa.String(32), nullable=True))
    op.add_column("desk", sa.Column("security_contact_text", sa.String(120), nullable=True))
    op.add_column("desk", sa.Column("ip_restrictions", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "broker_username",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("created_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("user_id", "username"),
    )
    op.create_index("ix_broker_username_user_id", "broker_username", ["user_id"])
    op.create_index("ix_broker_username_username", "broker_username", ["username"])


def downgrade() -> None:
    op.drop_index("ix_broker_username_username", table_name="broker_username")
    op.drop_index("ix_broker_username_user_id", table_name="broker_username")
    op.drop_table("broker_username")
    for table, column in (
        ("desk", "ip_restrictions"),
        ("desk", "security_contact_text"),
        ("desk", "security_contact_user"),
        ("trader_profile", "ip_restricted"),
        ("trader_profile", "order_precautions"),
        ("automation", "ip_restricted"),
        ("automation", "kill_switch_how"),
        ("automation", "account_kind"),
        ("automation", "second_factor_holder"),
    ):
        op.drop_column(table, column)  # SQLite 3.35+: ALTER TABLE ... DROP COLUMN
