"""batch files and jobs belong to the virtual key that created them

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    # batch_alter_table: SQLite cannot add an indexed column in place on every version; PostgreSQL alters directly.
    for table in ('batch_file', 'batch_job'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('owner_key_id', _S(length=64), nullable=True))
            batch.create_index(f'ix_{table}_owner_key_id', ['owner_key_id'], unique=False)


def downgrade() -> None:
    for table in ('batch_job', 'batch_file'):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f'ix_{table}_owner_key_id')
            batch.drop_column('owner_key_id')
