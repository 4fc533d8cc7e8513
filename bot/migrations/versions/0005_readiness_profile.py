"""readiness profile — issue 10 (readiness profile, TOTP drill)

Profiles, second factors, the drill's encrypted TOTP secrets and attempts, per-desk drill
windows, the automation register, readiness gaps; escalation.run_id becomes nullable (the
profile's escalations are opened before the morning, with no checklist run).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import bot.dbtypes

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Escalations opened by the readiness profile belong to no checklist run.
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.alter_column("run_id", existing_type=sa.INTEGER(), nullable=True)

    # The readiness profile (bot.profile.models).
    op.create_table(
        "drill_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("drill_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_drill_attempt_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_drill_attempt_user_id"), ["user_id"], unique=False)

    op.create_table(
        "profile_permission",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("interface", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("trading", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("market_data", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("updated_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "interface"),
    )
    with op.batch_alter_table("profile_permission", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_profile_permission_user_id"), ["user_id"], unique=False)

    op.create_table(
        "second_factor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("method", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("last_verified_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("verified_by", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("unverified_reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("updated_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "method"),
    )
    with op.batch_alter_table("second_factor", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_second_factor_user_id"), ["user_id"], unique=False)

    op.create_table(
        "totp_enrollment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("pending_secret", sa.Text(), nullable=True),
        sa.Column("pending_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("enrolled_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=True),
        sa.Column("last_success_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("locked_until", bot.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id"),
    )
    op.create_table(
        "trader_profile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("primary_interface", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("secondary_interface", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("primary_factor", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("risk_tier", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("risk_tier_set_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("risk_tier_set_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id"),
    )
    op.create_table(
        "automation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("interface", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("broker_username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("read_only_api", sa.Boolean(), nullable=False),
        sa.Column("trusted_ips", sa.Boolean(), nullable=False),
        sa.Column("order_size_limit", sa.Boolean(), nullable=False),
        sa.Column("kill_switch_tested_on", sa.Date(), nullable=True),
        sa.Column("credentials_rotated_on", sa.Date(), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("created_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["desk_id"], ["desk.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("desk_id", "name"),
    )
    with op.batch_alter_table("automation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_automation_desk_id"), ["desk_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_automation_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "profile_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk_id", sa.Integer(), nullable=False),
        sa.Column("standard_drill_days", sa.Integer(), nullable=False),
        sa.Column("elevated_drill_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["desk_id"], ["desk.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("desk_id"),
    )
    op.create_table(
        "readiness_gap",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.Column("opened_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("open_key", sqlmodel.sql.sqltypes.AutoString(length=1), nullable=True),
        sa.Column("escalated_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("escalation_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["desk_id"], ["desk.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["escalation_id"], ["escalation.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("desk_id", "subject", "kind", "open_key"),
    )
    with op.batch_alter_table("readiness_gap", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_readiness_gap_desk_id"), ["desk_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_readiness_gap_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    # Profile escalations have no run: they go with the profile.
    op.execute("DELETE FROM escalation WHERE run_id IS NULL")
    with op.batch_alter_table("readiness_gap", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_readiness_gap_user_id"))
        batch_op.drop_index(batch_op.f("ix_readiness_gap_desk_id"))

    op.drop_table("readiness_gap")
    op.drop_table("profile_policy")
    with op.batch_alter_table("automation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_automation_owner_id"))
        batch_op.drop_index(batch_op.f("ix_automation_desk_id"))

    op.drop_table("automation")
    op.drop_table("trader_profile")
    op.drop_table("totp_enrollment")
    with op.batch_alter_table("second_factor", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_second_factor_user_id"))

    op.drop_table("second_factor")
    with op.batch_alter_table("profile_permission", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profile_permission_user_id"))

    op.drop_table("profile_permission")
    with op.batch_alter_table("drill_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drill_attempt_user_id"))
        batch_op.drop_index(batch_op.f("ix_drill_attempt_at"))

    op.drop_table("drill_attempt")
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.alter_column("run_id", existing_type=sa.INTEGER(), nullable=False)
