"""broker register — issue 19 part 3 (what the register should know)

Create Date: 2026-12-04 15:00:00

- automation.second_factor_holder ('person' | 'bot'), automation.account_kind ('live' |
  'paper'), automation.kill_switch_how (who can stop it and how), automation.ip_restricted.
- trader_profile.order_precautions, trader_profile.ip_restricted: the trader's broker-side fences.
- broker_username: a trader's IBKR usernames (never a password).
- desk.security_contact_user / security_contact_text (who to ask for security changes) and
  desk.ip_restrictions (the desk uses the account's IP restrictions).
"""

from bot.migrations.columns import boolean, id_column, string, utc
from bot.migrations.kit import add_columns, create_table, drop_columns, drop_table, indexed, unique


def upgrade() -> None:
    # Plain ADD COLUMNs, not batch mode: on SQLite batch mode would copy the tables, and dropping
    # the old desk table cascades to every row that references a desk.
    add_columns(
        "automation",
        string("second_factor_holder", 8, default="person"),
        string("account_kind", 8, default="live"),
        string("kill_switch_how", 300, nullable=True),
        boolean("ip_restricted", default=False),
        batch=False,
    )
    add_columns(
        "trader_profile",
        boolean("order_precautions", default=False),
        boolean("ip_restricted", default=False),
        batch=False,
    )
    add_columns(
        "desk",
        string("security_contact_user", 32, nullable=True),
        string("security_contact_text", 120, nullable=True),
        boolean("ip_restrictions", default=False),
        batch=False,
    )
    create_table(
        "broker_username",
        id_column(),
        string("user_id", 32),
        string("username", 64),
        utc("created_at"),
        unique("user_id", "username"),
        indexed("user_id", "username"),
    )


def downgrade() -> None:
    drop_table("broker_username", indexed("user_id", "username"))
    # SQLite 3.35+: ALTER TABLE ... DROP COLUMN
    drop_columns("desk", "ip_restrictions", "security_contact_text", "security_contact_user", batch=False)
    drop_columns("trader_profile", "ip_restricted", "order_precautions", batch=False)
    drop_columns("automation", "ip_restricted", "kill_switch_how", "account_kind", "second_factor_holder", batch=False)


# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
