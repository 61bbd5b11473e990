"""traffic log

Revision ID: 0001
Revises: 
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('traffic',
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('endpoint', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('requested_model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('served_model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('deployment', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('user', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('feature', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('segment', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('prompt_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('prompt_version', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('stream', sa.Boolean(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('error_class', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('error_message', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('request_body', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('response_body', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('redactions', sa.Integer(), nullable=False),
    sa.Column('tokens_in', sa.Integer(), nullable=True),
    sa.Column('tokens_out', sa.Integer(), nullable=True),
    sa.Column('usage_estimated', sa.Boolean(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=True),
    sa.Column('ttft_ms', sa.Float(), nullable=True),
    sa.Column('tpot_ms', sa.Float(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('traffic', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_traffic_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_traffic_error_class'), ['error_class'], unique=False)
        batch_op.create_index(batch_op.f('ix_traffic_feature'), ['feature'], unique=False)
        batch_op.create_index('ix_traffic_model_created', ['requested_model', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_traffic_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_traffic_user'), ['user'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('traffic', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_traffic_user'))
        batch_op.drop_index(batch_op.f('ix_traffic_request_id'))
        batch_op.drop_index('ix_traffic_model_created')
        batch_op.drop_index(batch_op.f('ix_traffic_feature'))
        batch_op.drop_index(batch_op.f('ix_traffic_error_class'))
        batch_op.drop_index(batch_op.f('ix_traffic_created_at'))

    op.drop_table('traffic')
