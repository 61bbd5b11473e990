"""virtual keys, budgets, cost rollups and alerts

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table('virtual_key',
    sa.Column('name', _S(length=200), nullable=False),
    sa.Column('user', _S(length=200), nullable=True),
    sa.Column('allowed_models', _S(), nullable=True),
    sa.Column('requests_per_minute', sa.Integer(), nullable=True),
    sa.Column('tokens_per_minute', sa.Integer(), nullable=True),
    sa.Column('id', _S(length=32), nullable=False),
    sa.Column('key_hash', _S(length=64), nullable=False),
    sa.Column('prefix', _S(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    op.create_table('budget',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', _S(length=16), nullable=False),
    sa.Column('subject', _S(length=200), nullable=False),
    sa.Column('period', _S(length=16), nullable=False),
    sa.Column('limit_usd', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('scope', 'subject', 'period', name='uq_budget_scope_subject_period')
    )
    op.create_table('cost_rollup',
    sa.Column('span', _S(length=8), nullable=False),
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('dimension', _S(length=16), nullable=False),
    sa.Column('value', _S(length=200), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('tokens_in', sa.Integer(), nullable=False),
    sa.Column('tokens_out', sa.Integer(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.Column('estimated', sa.Integer(), nullable=False),
    sa.Column('unpriced', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('span', 'period', 'dimension', 'value'),
    sqlite_with_rowid=False
    )
    op.create_table('cost_alert',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', _S(length=32), nullable=False),
    sa.Column('scope', _S(length=16), nullable=False),
    sa.Column('subject', _S(length=200), nullable=False),
    sa.Column('message', _S(length=500), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('dedupe', _S(length=300), nullable=False),
    sa.Column('delivered', _S(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe')
    )
    op.create_index('ix_cost_alert_created_at', 'cost_alert', ['created_at'], unique=False)
    op.create_index('ix_cost_alert_kind', 'cost_alert', ['kind'], unique=False)


def downgrade() -> None:
    op.drop_table('cost_alert')
    op.drop_table('cost_rollup')
    op.drop_table('budget')
    op.drop_table('virtual_key')
