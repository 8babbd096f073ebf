"""tickets: a counter row per day allocates ticket numbers in one statement

Seeded from the numbers already given out (``GD<YYYYMMDD>-<n>``).

Revision ID: 0004_ticket_numbers
Revises: 0003_ticket_call_id
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_ticket_numbers"
down_revision: str | None = "0003_ticket_call_id"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ticket_number_counters",
        sa.Column("day", sa.String(length=8), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_ticket_number_counters")),
    )
    # GD20261129-0001: the day is characters 3-10, the sequence starts at character 12.
    op.execute(
        sa.text(
            "INSERT INTO ticket_number_counters (day, last) "
            "SELECT substr(number, 3, 8), max(CAST(substr(number, 12) AS INTEGER)) "
            "FROM tickets WHERE number LIKE 'GD________-%' GROUP BY substr(number, 3, 8)"
        )
    )


def downgrade() -> None:
    op.drop_table("ticket_number_counters")
