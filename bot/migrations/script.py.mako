"""${message}

Create Date: ${create_date}
"""
## Write the change with bot/migrations/kit.py and columns.py (create_table, add_columns, string,
## utc...): each spells what autogenerate writes out (sa.Column(...), batch_alter_table blocks)
## with the same DDL. Only what the body uses is imported.
<%
    body = (upgrades or "") + (downgrades or "")
    used = [
        line
        for needed, line in (
            ("sa." in body, "import sqlalchemy as sa"),
            ("sqlmodel." in body, "import sqlmodel.sql.sqltypes"),
            ("op." in body, "from alembic import op"),
        )
        if needed
    ]
%>\
% if used or imports:

% endif
% for line in used:
${line}
% endfor
% if imports:
${imports}
% endif
% if "bot.dbtypes." in body:

import bot.dbtypes
% endif


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}


# revision identifiers, used by Alembic.
revision = "${up_revision}"
down_revision = ${('"%s"' % down_revision) if isinstance(down_revision, str) else repr(down_revision)}
% if branch_labels:
branch_labels = ${repr(branch_labels)}
% endif
% if depends_on:
depends_on = ${repr(depends_on)}
% endif
