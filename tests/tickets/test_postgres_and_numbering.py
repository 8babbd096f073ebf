"""The lifecycle on PostgreSQL, and ticket numbers that stay unique under concurrency."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from callcenter.context import AppContext
from callcenter.db import make_engine
from callcenter.errors import Conflict
from callcenter.migrate import upgrade
from tests.tickets.conftest import MakeCtx
from tests.tickets.helpers import payload
from tests.tickets.test_lifecycle import ALL_MEMBERS, full_lifecycle
from ticketing import services
from ticketing.schemas import TicketCreate


def create_concurrently(ctx: AppContext, threads: int, each: int, now: datetime) -> list[str]:
    numbers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        for _ in range(each):
            try:
                ticket = services.create_ticket(
                    ctx, TicketCreate(**payload()), actor="1001", now=now
                )
            except BaseException as exc:  # collected and re-raised by the test
                with lock:
                    errors.append(exc)
                return
            with lock:
                numbers.append(ticket.number)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == []
    return numbers


def check_numbers(numbers: list[str], day: str, count: int) -> None:
    assert len(numbers) == count
    assert sorted(numbers) == [f"GD{day}-{n:04d}" for n in range(1, count + 1)]


def test_numbers_are_unique_and_dense_on_sqlite(ctx: AppContext) -> None:
    # 23:30 UTC on 7 Dec is 07:30 on 8 Dec in Shanghai: the number carries the local day
    numbers = create_concurrently(ctx, 4, 5, datetime(2026, 12, 7, 23, 30, tzinfo=UTC))
    check_numbers(numbers, "20261208", 20)
    next_day = services.create_ticket(
        ctx, TicketCreate(**payload()), actor="1001", now=datetime(2026, 12, 8, 16, 5, tzinfo=UTC)
    )
    assert next_day.number == "GD20261209-0001"


@pytest.mark.postgres
def test_numbers_are_unique_and_dense_on_postgres(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(postgres=True)
    numbers = create_concurrently(ctx, 6, 5, datetime(2026, 12, 7, 2, 0, tzinfo=UTC))
    check_numbers(numbers, "20261207", 30)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("track", "category", "staff"),
    [("general", "public_water", "eng1"), ("emergency", "fire_safety", "sec1")],
)
def test_full_lifecycle_on_postgres(
    make_ctx: MakeCtx, client_for: Any, track: str, category: str, staff: str
) -> None:
    ctx = make_ctx(postgres=True, **{"callbacks.toml": ALL_MEMBERS})
    final = full_lifecycle(ctx, client_for(ctx), track, category, staff)
    assert final["status"] == "archived"


@pytest.mark.postgres
def test_sla_escalation_on_postgres(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(postgres=True)
    t0 = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    ticket_id = services.create_ticket(ctx, TicketCreate(**payload()), actor="1001", now=t0).id
    from ticketing import jobs

    assert jobs.scan_sla(now=t0 + timedelta(minutes=95)) == {
        "checked": 1,
        "warned": 0,
        "overdue": 1,
        "escalated": 2,
    }
    assert services.ticket_detail(ctx, ticket_id)["escalation_level"] == 2


def race_assignments(ctx: AppContext) -> tuple[int, int]:
    """Eight threads assign the same ticket at once: exactly one wins, the rest get 409."""
    ticket_id = services.create_ticket(ctx, TicketCreate(**payload()), actor="1001").id
    start = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        start.wait()
        try:
            services.transition(
                ctx, ticket_id, {"to": "assigned", "assignee": f"工人{n}"}, actor="1001"
            )
            result = "ok"
        except Conflict:
            result = "conflict"
        with lock:
            outcomes.append(result)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    detail = services.ticket_detail(ctx, ticket_id)
    assigned = [e for e in detail["timeline"] if e["to_status"] == "assigned"]
    assert len(assigned) == 1 and detail["assignee"] == assigned[0]["data"]["assignee"]
    return outcomes.count("ok"), outcomes.count("conflict")


def test_concurrent_steps_on_sqlite(ctx: AppContext) -> None:
    assert race_assignments(ctx) == (1, 7)


@pytest.mark.postgres
def test_concurrent_steps_on_postgres(make_ctx: MakeCtx) -> None:
    assert race_assignments(make_ctx(postgres=True)) == (1, 7)


CREATE_IN_A_PROCESS = """
import sys
from datetime import UTC, datetime
from callcenter.context import build_context
from callcenter import runtime
from config.settings import Settings
from tests.tickets.helpers import payload
from ticketing import services
from ticketing.schemas import TicketCreate

ctx = build_context(Settings(environment="test", state_dir=sys.argv[1], redis_url=sys.argv[2]))
runtime.set_context(ctx)
now = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
for _ in range(int(sys.argv[3])):
    print(services.create_ticket(ctx, TicketCreate(**payload()), actor="1001", now=now).number)
"""


def test_numbers_are_dense_across_processes_on_sqlite(ctx: AppContext) -> None:
    """Three processes (as uvicorn workers are) create tickets at once: the SQLite write gate
    (a thread lock and an flock) queues them, nobody fails on a busy database."""
    settings = ctx.settings
    root = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-c", CREATE_IN_A_PROCESS]
    argv += [str(settings.state_dir), settings.redis_url, "10"]
    runs = [
        subprocess.Popen(argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    numbers: list[str] = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        numbers += out.split()
    check_numbers(numbers, "20261207", 30)


def test_a_counter_behind_the_numbers_in_use_catches_up(ctx: AppContext) -> None:
    """The unique constraint is the final guard: a number given out past the day's counter
    (an import, a restored backup) makes the creation lift the counter and take the next."""
    now = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    first = services.create_ticket(ctx, TicketCreate(**payload()), actor="1001", now=now)
    assert first.number == "GD20261207-0001"
    with ctx.engine.begin() as conn:
        conn.execute(
            text("UPDATE tickets SET number = 'GD20261207-0002' WHERE id = :id"), {"id": first.id}
        )
    numbers = [
        services.create_ticket(ctx, TicketCreate(**payload()), actor="1001", now=now).number
        for _ in range(2)
    ]
    assert numbers == ["GD20261207-0003", "GD20261207-0004"]


def test_counters_are_seeded_from_the_numbers_in_use(database_url: str) -> None:
    upgrade(database_url, "0003_ticket_call_id")
    engine = make_engine(database_url)
    columns = (
        "number, category, track, status, reporter, unit, what, when_text, contact, "
        "description, channel, sla_class, escalation_level, overdue, created_by, created_at, "
        "updated_at"
    )
    with engine.begin() as conn:
        for number in ("GD20261207-0003", "GD20261207-0012", "GD20261208-0001", "BENCH-000001"):
            conn.execute(
                text(
                    f"INSERT INTO tickets ({columns}) VALUES (:n, 'c', 'general', 'registered', "
                    "'r', 'u', 'w', 'w', 'c', '', 'api', '30m', 0, false, 'me', "
                    "'2026-12-07 00:00:00', '2026-12-07 00:00:00')"
                ),
                {"n": number},
            )
    upgrade(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT day, last FROM ticket_number_counters ORDER BY day"))
        assert [tuple(r) for r in rows] == [("20261207", 12), ("20261208", 1)]
    engine.dispose()
