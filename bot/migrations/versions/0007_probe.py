"""probe — issue 19 part 2 (evidence from the broker: probe endpoints and their results)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import bot.dbtypes

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "probe_endpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk_id", sa.Integer(), nullable=False),
        sa.Column("trader_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("automation_id", sa.Integer(), nullable=True),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("host", sqlmodel.sql.sqltypes.AutoString(length=253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("tls", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("ca_bundle", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("created_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["automation_id"], ["automation.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["desk_id"], ["desk.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("desk_id", "label"),
    )
    with op.batch_alter_table("probe_endpoint", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_probe_endpoint_desk_id"), ["desk_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_probe_endpoint_trader_id"), ["trader_id"], unique=False)

    op.create_table(
        "probe_result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("checked_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("healthy", sa.Boolean(), nullable=False),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("server_version", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("session_expires_at", bot.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["endpoint_id"], ["probe_endpoint.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("probe_result", schema=None) as batch_op:
        batch_op.create_index("ix_probe_result_endpoint_checked", ["endpoint_id", "checked_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("probe_result", schema=None) as batch_op:
        batch_op.drop_index("ix_probe_result_endpoint_checked")
    op.drop_table("probe_result")
    with op.batch_alter_table("probe_endpoint", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_probe_endpoint_trader_id"))
        batch_op.drop_index(batch_op.f("ix_probe_endpoint_desk_id"))
    op.drop_table("probe_endpoint")
