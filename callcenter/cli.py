"""``callcenter``: one command for everything.

callcenter up            migrate, start what is missing, run every process, print addresses
callcenter api           the HTTP API and pages
callcenter engine        the SIP/media engine (supervisor of pjsua2 slots, SIP edge)
callcenter worker        the RQ worker (SLA timers, callbacks, webhooks, reports)
callcenter router        the routing service (ACD: offers, ring/wrap-up/overflow timers)
callcenter migrate       upgrade the database to the newest schema
callcenter seed-demo     insert the demo center (agents, customers, departments)
callcenter check-config  validate the declarative files and print every problem
callcenter user ...      add / disable / enable / passwd / list users (callcenter/admin/cli.py)
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from config.loader import ConfigError, load_config
from config.settings import load_settings

Handler = Callable[[argparse.Namespace], int]


def _check_config(_args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        center = load_config(settings.config_dir)
    except ConfigError as exc:
        print(
            f"configuration in {settings.config_dir} has {len(exc.problems)} problem(s):",
            file=sys.stderr,
        )
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    from ivr.edge.config import edge_config_problems  # pure Python: no pjsua2 here

    edge_problems = edge_config_problems(settings, center)
    if edge_problems:
        for problem in edge_problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(
        f"configuration OK: {settings.config_dir} "
        f"({len(center.menu.nodes)} menu nodes, {len(center.queues.queues)} queues, "
        f"{len(center.shifts.shifts)} shifts, {len(center.dispatch.categories)} ticket categories, "
        f"{len(center.telephony.dids)} DID(s))"
    )
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from callcenter.migrate import upgrade

    settings = load_settings()
    upgrade(settings.database_url)
    print(f"database at head: {settings.database_url}")
    return 0


def _seed_demo(_args: argparse.Namespace) -> int:
    from callcenter.context import build_context
    from callcenter.demo import FIRST_ADMIN_HINT, demo_refusal, seed_demo
    from callcenter.migrate import upgrade

    settings = load_settings()
    refusal = demo_refusal(settings)
    if refusal is not None:
        print(f"refusing to insert the demo center: {refusal}. {FIRST_ADMIN_HINT}", file=sys.stderr)
        return 1
    upgrade(settings.database_url)
    ctx = build_context(settings)
    seeded = seed_demo(ctx)
    print("demo data inserted" if seeded else "users already exist: demo data left as it is")
    return 0


def _api(_args: argparse.Namespace) -> int:
    from callcenter.processes import run_api

    run_api(load_settings())
    return 0


def _worker(args: argparse.Namespace) -> int:
    from callcenter import runtime, worker
    from callcenter.context import build_context

    ctx = build_context(load_settings())
    runtime.set_context(ctx)
    if not args.burst:
        from callcenter.admin.config_watch import start_watcher

        start_watcher(ctx)  # stored configuration versions reach the jobs without a restart
    worker.run(ctx, burst=args.burst)
    return 0


def _router(_args: argparse.Namespace) -> int:
    from callcenter.admin.config_watch import start_watcher
    from callcenter.context import build_context
    from cti.router import main as router_main

    ctx = build_context(load_settings())
    start_watcher(ctx)  # stored configuration versions reach routing without a restart
    router_main(ctx)
    return 0


def _engine(_args: argparse.Namespace) -> int:
    try:
        engine = importlib.import_module("ivr.supervisor")
    except ModuleNotFoundError as exc:
        if exc.name != "ivr.supervisor":
            raise
        print(
            "the SIP/media engine is not part of this build yet (ivr.supervisor missing)",
            file=sys.stderr,
        )
        return 2
    engine.main(load_settings())
    return 0


def _up(_args: argparse.Namespace) -> int:
    from callcenter.processes import run_up

    return run_up(load_settings())


def _user(args: argparse.Namespace) -> int:
    from callcenter.admin.cli import run

    return run(args)


COMMANDS: dict[str, tuple[Handler, str]] = {
    "up": (_up, "migrate, start what is missing and run every process (embedded defaults)"),
    "api": (_api, "run the HTTP API and pages"),
    "engine": (_engine, "run the SIP/media engine"),
    "worker": (_worker, "run a background-job worker"),
    "router": (_router, "run the routing service (queues, offers, routing timers)"),
    "migrate": (_migrate, "upgrade the database schema to the newest revision"),
    "seed-demo": (_seed_demo, "insert the demo center if the database has no users"),
    "check-config": (_check_config, "validate the declarative configuration files"),
    "user": (_user, "manage users: add, disable, enable, passwd, list"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callcenter", description="Call-center backend")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_handler, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if name == "worker":
            command.add_argument(
                "--burst", action="store_true", help="exit when the queues are empty"
            )
        if name == "user":
            from callcenter.admin.cli import add_arguments

            add_arguments(command)
    args = parser.parse_args(argv)
    handler, _ = COMMANDS[args.command]
    try:
        return handler(args)
    except ConfigError as exc:
        print("refusing to start: invalid configuration", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
