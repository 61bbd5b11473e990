"""release labels, rollouts, experiments, feedback and the promotion audit log

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString
_TABLES = ('release_revision', 'release_feedback', 'release_experiment', 'release_prompt_source',
           'release_audit', 'release_label')


def upgrade() -> None:
    op.create_table('release_label',
    sa.Column('kind', _S(length=16), nullable=False),
    sa.Column('version', _S(length=100), nullable=True),
    sa.Column('model', _S(length=200), nullable=True),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', _S(length=200), nullable=True),
    sa.Column('subject', _S(length=200), nullable=False),
    sa.Column('label', _S(length=16), nullable=False),
    sa.PrimaryKeyConstraint('subject', 'label')
    )
    op.create_table('release_audit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('subject', _S(length=200), nullable=False),
    sa.Column('label', _S(length=16), nullable=True),
    sa.Column('action', _S(length=32), nullable=False),
    sa.Column('from_version', _S(length=100), nullable=True),
    sa.Column('from_model', _S(length=200), nullable=True),
    sa.Column('to_version', _S(length=100), nullable=True),
    sa.Column('to_model', _S(length=200), nullable=True),
    sa.Column('weight', sa.Float(), nullable=True),
    sa.Column('forced', sa.Boolean(), nullable=False),
    sa.Column('reason', _S(), nullable=True),
    sa.Column('actor', _S(length=200), nullable=True),
    sa.Column('run_id', _S(length=32), nullable=True),
    sa.Column('gate', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_release_audit_at', 'release_audit', ['at'], unique=False)
    op.create_index('ix_release_audit_subject', 'release_audit', ['subject'], unique=False)
    op.create_table('release_prompt_source',
    sa.Column('name', _S(length=200), nullable=False),
    sa.Column('version', _S(length=100), nullable=False),
    sa.Column('source', _S(), nullable=False),
    sa.Column('stored_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', 'version')
    )
    op.create_table('release_experiment',
    sa.Column('name', _S(length=200), nullable=False),
    sa.Column('subject', _S(length=200), nullable=False),
    sa.Column('arms', sa.JSON(), nullable=False),
    sa.Column('status', _S(length=16), nullable=False),
    sa.Column('description', _S(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_by', _S(length=200), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_index('ix_release_experiment_subject', 'release_experiment', ['subject'], unique=False)
    op.create_table('release_feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('request_id', _S(length=64), nullable=False),
    sa.Column('outcome', _S(length=100), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('experiment', _S(length=200), nullable=True),
    sa.Column('variant', _S(length=64), nullable=True),
    sa.Column('user', _S(length=200), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_release_feedback_created_at', 'release_feedback', ['created_at'], unique=False)
    op.create_index('ix_release_feedback_request_id', 'release_feedback', ['request_id'], unique=False)
    op.create_index('ix_release_feedback_experiment', 'release_feedback', ['experiment'], unique=False)
    revisions = op.create_table('release_revision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(revisions, [{'id': 1, 'revision': 0, 'changed_at': datetime.now(UTC)}])


def downgrade() -> None:
    for table in _TABLES:
        op.drop_table(table)
