"""readiness profile — issue 10 (readiness profile, TOTP drill)

Create Date: 2026-11-30 05:30:00

Profiles, second factors, the drill's encrypted TOTP secrets and attempts, per-desk drill
windows, the automation register, readiness gaps; escalation.run_id becomes nullable (the
profile's escalations are opened before the morning, with no checklist run).
"""

import sqlalchemy as sa
from alembic import op

from bot.migrations.columns import boolean, date, id_column, integer, string, text, utc
from bot.migrations.kit import create_table, drop_table, fk, indexed, unique


def upgrade() -> None:
    # Escalations opened by the readiness profile belong to no checklist run.
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.alter_column("run_id", existing_type=sa.INTEGER(), nullable=True)

    # The readiness profile (bot.profile.models).
    create_table(
        "drill_attempt",
        id_column(),
        string("user_id", 32),
        utc("at"),
        string("purpose", 16),
        string("outcome", 16),
        indexed("at", "user_id"),
    )
    create_table(
        "profile_permission",
        id_column(),
        string("user_id", 32),
        string("interface", 16),
        string("trading", 120),
        string("market_data", 120),
        string("note", 300, nullable=True),
        utc("updated_at"),
        unique("user_id", "interface"),
        indexed("user_id"),
    )
    create_table(
        "second_factor",
        id_column(),
        string("user_id", 32),
        string("method", 24),
        utc("last_verified_at", nullable=True),
        string("verified_by", 16, nullable=True),
        string("unverified_reason", 200, nullable=True),
        utc("updated_at"),
        unique("user_id", "method"),
        indexed("user_id"),
    )
    create_table(
        "totp_enrollment",
        id_column(),
        string("user_id", 32),
        text("secret", nullable=True),
        text("pending_secret", nullable=True),
        utc("pending_at", nullable=True),
        utc("enrolled_at", nullable=True),
        integer("last_step", nullable=True),
        utc("last_success_at", nullable=True),
        utc("locked_until", nullable=True),
        unique("user_id"),
    )
    create_table(
        "trader_profile",
        id_column(),
        string("user_id", 32),
        string("primary_interface", 16, nullable=True),
        string("secondary_interface", 16, nullable=True),
        string("primary_factor", 24),
        string("risk_tier", 16),
        string("risk_tier_set_by", 32, nullable=True),
        utc("risk_tier_set_at", nullable=True),
        utc("created_at"),
        utc("updated_at"),
        unique("user_id"),
    )
    create_table(
        "automation",
        id_column(),
        integer("desk_id"),
        string("owner_id", 32),
        string("name", 64),
        string("interface", 16),
        string("broker_username", 64),
        boolean("read_only_api"),
        boolean("trusted_ips"),
        boolean("order_size_limit"),
        date("kill_switch_tested_on", nullable=True),
        date("credentials_rotated_on", nullable=True),
        string("created_by", 32),
        utc("created_at"),
        utc("updated_at"),
        fk("desk_id", "desk"),
        unique("desk_id", "name"),
        indexed("desk_id", "owner_id"),
    )
    create_table(
        "profile_policy",
        id_column(),
        integer("desk_id"),
        integer("standard_drill_days"),
        integer("elevated_drill_days"),
        utc("updated_at"),
        fk("desk_id", "desk"),
        unique("desk_id"),
    )
    create_table(
        "readiness_gap",
        id_column(),
        integer("desk_id"),
        string("user_id", 32),
        string("kind", 16),
        string("subject", 48),
        text("detail", default=""),
        utc("opened_at"),
        utc("closed_at", nullable=True),
        string("open_key", 1, nullable=True),
        utc("escalated_at", nullable=True),
        integer("escalation_id", nullable=True),
        fk("desk_id", "desk"),
        fk("escalation_id", "escalation", ondelete="SET NULL"),
        unique("desk_id", "subject", "kind", "open_key"),
        indexed("desk_id", "user_id"),
    )


def downgrade() -> None:
    # Profile escalations have no run: they go with the profile.
    op.execute("DELETE FROM escalation WHERE run_id IS NULL")
    drop_table("readiness_gap", indexed("desk_id", "user_id"))
    drop_table("profile_policy")
    drop_table("automation", indexed("desk_id", "owner_id"))
    drop_table("trader_profile")
    drop_table("totp_enrollment")
    drop_table("second_factor", indexed("user_id"))
    drop_table("profile_permission", indexed("user_id"))
    drop_table("drill_attempt", indexed("at", "user_id"))
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.alter_column("run_id", existing_type=sa.INTEGER(), nullable=False)


# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
