"""judge scores, judge cache and calibration

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table('judge_cache',
    sa.Column('key', _S(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('metric', _S(length=200), nullable=False),
    sa.Column('rubric_hash', _S(length=64), nullable=False),
    sa.Column('judge', _S(length=300), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('reason', _S(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_index('ix_judge_cache_metric', 'judge_cache', ['metric'], unique=False)
    op.create_table('judge_score',
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('traffic_id', _S(length=32), nullable=True),
    sa.Column('metric', _S(length=200), nullable=False),
    sa.Column('rubric_hash', _S(length=64), nullable=False),
    sa.Column('judges', _S(length=1000), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('spread', sa.Float(), nullable=True),
    sa.Column('cached', sa.Boolean(), nullable=False),
    sa.Column('error', _S(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_judge_score_created_at', 'judge_score', ['created_at'], unique=False)
    op.create_index('ix_judge_score_traffic_id', 'judge_score', ['traffic_id'], unique=False)
    op.create_index('ix_judge_score_metric', 'judge_score', ['metric'], unique=False)
    op.create_table('judge_calibration',
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('metric', _S(length=200), nullable=False),
    sa.Column('rubric_hash', _S(length=64), nullable=False),
    sa.Column('judges', _S(length=1000), nullable=False),
    sa.Column('dataset', _S(length=500), nullable=False),
    sa.Column('dataset_sha256', _S(length=64), nullable=True),
    sa.Column('n_items', sa.Integer(), nullable=False),
    sa.Column('n_scored', sa.Integer(), nullable=False),
    sa.Column('accuracy', sa.Float(), nullable=True),
    sa.Column('kappa', sa.Float(), nullable=True),
    sa.Column('spearman', sa.Float(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_judge_calibration_created_at', 'judge_calibration', ['created_at'], unique=False)
    op.create_index('ix_judge_calibration_metric', 'judge_calibration', ['metric'], unique=False)


def downgrade() -> None:
    op.drop_table('judge_calibration')
    op.drop_table('judge_score')
    op.drop_table('judge_cache')
