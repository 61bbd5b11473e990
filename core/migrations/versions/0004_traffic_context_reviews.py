"""traffic context (key, release arm, route, cache, guards, confidence, review) and the review queue

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table('traffic') as batch:
        batch.add_column(sa.Column('key_id', _S(length=64), nullable=True))
        batch.add_column(sa.Column('variant', _S(length=64), nullable=True))
        batch.add_column(sa.Column('experiment', _S(length=200), nullable=True))
        batch.add_column(sa.Column('shadow_of', _S(length=64), nullable=True))
        batch.add_column(sa.Column('route_reason', _S(length=200), nullable=True))
        batch.add_column(sa.Column('cache_status', _S(length=16), nullable=True))
        batch.add_column(sa.Column('guard_events', _S(), nullable=True))
        batch.add_column(sa.Column('confidence', sa.Float(), nullable=True))
        batch.add_column(sa.Column('review_reason', _S(length=500), nullable=True))
        batch.create_index('ix_traffic_key_id', ['key_id'], unique=False)
    op.create_table('review_item',
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', _S(length=32), nullable=False),
    sa.Column('reason', _S(length=500), nullable=False),
    sa.Column('traffic_id', _S(length=32), nullable=True),
    sa.Column('request_id', _S(length=64), nullable=True),
    sa.Column('model', _S(length=200), nullable=True),
    sa.Column('prompt_name', _S(length=200), nullable=True),
    sa.Column('input_text', _S(), nullable=True),
    sa.Column('output_text', _S(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('details', _S(), nullable=True),
    sa.Column('status', _S(length=16), nullable=False),
    sa.Column('label', _S(length=16), nullable=True),
    sa.Column('note', _S(), nullable=True),
    sa.Column('reviewer', _S(length=200), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_review_item_created_at', 'review_item', ['created_at'], unique=False)
    op.create_index('ix_review_item_source', 'review_item', ['source'], unique=False)
    op.create_index('ix_review_item_status', 'review_item', ['status'], unique=False)
    op.create_index('ix_review_item_traffic_id', 'review_item', ['traffic_id'], unique=False)


def downgrade() -> None:
    op.drop_table('review_item')
    with op.batch_alter_table('traffic') as batch:
        batch.drop_index('ix_traffic_key_id')
        for name in ('key_id', 'variant', 'experiment', 'shadow_of', 'route_reason', 'cache_status',
                     'guard_events', 'confidence', 'review_reason'):
            batch.drop_column(name)
