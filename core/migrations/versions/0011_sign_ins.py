"""dashboard sign-in attempts (throttling is in memory; this is the record)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table('sign_in_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_name', _S(length=200), nullable=True),
    sa.Column('address', _S(length=64), nullable=True),
    sa.Column('outcome', _S(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_sign_in_attempt_at', 'sign_in_attempt', ['at'], unique=False)
    op.create_index('ix_sign_in_attempt_user_name', 'sign_in_attempt', ['user_name'], unique=False)
    op.create_index('ix_sign_in_attempt_address', 'sign_in_attempt', ['address'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_sign_in_attempt_address', table_name='sign_in_attempt')
    op.drop_index('ix_sign_in_attempt_user_name', table_name='sign_in_attempt')
    op.drop_index('ix_sign_in_attempt_at', table_name='sign_in_attempt')
    op.drop_table('sign_in_attempt')
