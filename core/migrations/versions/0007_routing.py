"""response cache, files and batches

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('cache_entry',
    sa.Column('key', _S(length=64), nullable=False),
    sa.Column('endpoint', _S(length=32), nullable=False),
    sa.Column('model', _S(length=200), nullable=True),
    sa.Column('prompt_name', _S(length=200), nullable=True),
    sa.Column('prompt_version', _S(length=64), nullable=True),
    sa.Column('scope', _S(length=64), nullable=True),
    sa.Column('query', _S(), nullable=True),
    sa.Column('vector', sa.LargeBinary(), nullable=True),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', _T, nullable=False),
    sa.Column('expires_at', _T, nullable=False),
    sa.PrimaryKeyConstraint('key'),
    )
    op.create_index('ix_cache_entry_expires_at', 'cache_entry', ['expires_at'], unique=False)
    op.create_table('batch_file',
    sa.Column('id', _S(length=64), nullable=False),
    sa.Column('purpose', _S(length=32), nullable=False),
    sa.Column('filename', _S(length=255), nullable=False),
    sa.Column('bytes', sa.Integer(), nullable=False),
    sa.Column('created_at', _T, nullable=False),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_table('batch_job',
    sa.Column('id', _S(length=64), nullable=False),
    sa.Column('endpoint', _S(length=64), nullable=False),
    sa.Column('input_file_id', _S(length=64), nullable=False),
    sa.Column('completion_window', _S(length=16), nullable=False),
    sa.Column('status', _S(length=16), nullable=False),
    sa.Column('output_file_id', _S(length=64), nullable=True),
    sa.Column('error_file_id', _S(length=64), nullable=True),
    sa.Column('errors', _S(), nullable=True),
    sa.Column('metadata_json', _S(), nullable=True),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('completed', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('created_at', _T, nullable=False),
    *[sa.Column(name, _T, nullable=True) for name in (
        'in_progress_at', 'expires_at', 'finalizing_at', 'completed_at', 'failed_at', 'expired_at',
        'cancelling_at', 'cancelled_at')],
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_batch_job_status', 'batch_job', ['status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_batch_job_status', table_name='batch_job')
    op.drop_table('batch_job')
    op.drop_table('batch_file')
    op.drop_index('ix_cache_entry_expires_at', table_name='cache_entry')
    op.drop_table('cache_entry')
