"""away by desk — issue 17 (authority by desk)

Create Date: 2026-12-03 22:40:00

away.desks: NULL for a trader's own away (every desk they trade on); the desk ids a manager's
away applies to (",3,7,": that manager's desks the trader trades on) otherwise. Existing rows
set by someone other than the trader are kept as they were (NULL: every desk).
"""

from bot.migrations.columns import string
from bot.migrations.kit import add_columns, drop_columns


def upgrade() -> None:
    add_columns("away", string("desks", 500, nullable=True))


def downgrade() -> None:
    drop_columns("away", "desks")


# revision identifiers, used by Alembic.
revision = "0010"
down_revision = "0009"
