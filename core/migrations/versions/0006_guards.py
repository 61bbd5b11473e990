"""guards: no schema change

The guardrails need no table of their own: every trigger is stored in the traffic row's `guard_events`
column, low confidence in `confidence`, and items for review go to `review_item` through the row's
`review_reason` (columns and table added by 0004). This revision stays in the chain as a no-op so the
revision numbers of later slots do not move.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
