"""away by desk — issue 17 (authority by desk)

away.desks: NULL for a trader's own away (every desk they trade on); the desk ids a manager's
away applies to (",3,7,": that manager's desks the trader trades on) otherwise. Existing rows
set by someone other than the trader are kept as they were (NULL: every desk).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("away", schema=None) as batch_op:
        batch_op.add_column(sa.Column("desks", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("away", schema=None) as batch_op:
        batch_op.drop_column("desks")
