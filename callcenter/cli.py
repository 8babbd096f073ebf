"""``callcenter``: one command for everything.

callcenter up            migrate, start what is missing, run every process, print addresses
callcenter api           the HTTP API and pages
callcenter engine        the SIP/media engine (supervisor of pjsua2 slots, SIP edge)
callcenter engine --node NAME --host ADDRESS   a media node joining a running `callcenter edge`
callcenter edge          the SIP edge alone, dispatching to the media nodes that join it
callcenter worker        the RQ worker (SLA timers, callbacks, webhooks, reports)
callcenter router        the routing service (ACD: offers, ring/wrap-up/overflow timers)
callcenter migrate       upgrade the database to the newest schema
callcenter seed-demo     insert the demo center (agents, customers, departments)
callcenter check-config  validate the declarative files and print every problem
callcenter simulate      what-if: a day's callers against a staffing plan, real routing rules
callcenter recordings-reconcile   answered calls, recording rows, files and checksums agree?
callcenter recordings-retention   delete recordings past their queue's retention (not on hold)
callcenter systemd-units --out DIR   write the systemd units running what `up` runs
callcenter user ...      add / disable / enable / passwd / list users (admin/cli.py)
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import re
import socket
import sys
from collections.abc import Callable
from pathlib import Path

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
    from callcenter.services import aof_wanted, ensure_aof

    settings = load_settings()
    upgrade(settings.database_url)
    print(f"database at head: {settings.database_url}")
    if aof_wanted(settings.redis_aof, settings.environment):
        # The one-shot that runs before every process (compose, systemd): Redis keeps the
        # routing state across its own restarts from here on.
        print(ensure_aof(settings.redis_url))
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
        from callcenter.config_watch import start_watcher

        start_watcher(ctx)  # stored configuration versions reach the jobs without a restart
    worker.run(ctx, burst=args.burst)
    return 0


def _router(_args: argparse.Namespace) -> int:
    from callcenter.config_watch import start_watcher
    from callcenter.context import build_context
    from cti.router import main as router_main

    ctx = build_context(load_settings())
    start_watcher(ctx)  # stored configuration versions reach routing without a restart
    router_main(ctx)
    return 0


def _engine(args: argparse.Namespace) -> int:
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
    settings = load_settings()
    if (args.node is None) != (args.host is None):
        print(
            "engine: --node and --host go together (a media node joining an edge)", file=sys.stderr
        )
        return 2
    if args.node is not None:
        try:
            node, host = node_identity(args.node, args.host)
        except ValueError as exc:
            print(f"engine: {exc}", file=sys.stderr)
            return 2
        settings = settings.model_copy(
            update={
                "node_id": node,
                "sip": settings.sip.model_copy(update={"slot_host": host}),
            }
        )
        engine.main(settings, join=True)
        return 0
    engine.main(settings)
    return 0


def node_identity(
    node: str,
    host: str,
    hostname: Callable[[], str] = socket.gethostname,
    resolve: Callable[[str], str] = socket.gethostbyname,
) -> tuple[str, str]:
    """A media node's name and slot address from ``--node``/``--host``. ``auto`` takes them
    from the machine (a container replica): the host name, and the address it resolves to,
    which must not be a loopback one (a container's own /etc/hosts maps its name to its
    network address)."""
    if node == "auto":
        node = re.sub(r"[^A-Za-z0-9_.-]", "-", hostname())[:32]
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", node):
        raise ValueError(f"--node {node!r}: letters, digits, '.', '_' or '-' (at most 32)")
    if host == "auto":
        try:
            host = resolve(hostname())
        except OSError as exc:
            raise ValueError(f"--host auto: {hostname()!r} does not resolve ({exc})") from None
        if ipaddress.ip_address(host).is_loopback:
            raise ValueError(
                f"--host auto: {hostname()!r} resolves to the loopback address {host}; "
                "give the address this node's peers reach"
            )
    try:
        return node, str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"--host {host!r} is not an IP address") from None


def _edge(_args: argparse.Namespace) -> int:
    from ivr.edge.standalone import main as edge_main

    edge_main(load_settings())
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from metrics.whatif_cli import run

    return run(args)


def _recordings(args: argparse.Namespace) -> int:
    from recordings.commands import run

    return run(args.command, load_settings())


def _up(_args: argparse.Namespace) -> int:
    from callcenter.processes import run_up

    return run_up(load_settings())


def _systemd_units(args: argparse.Namespace) -> int:
    from callcenter.systemd import UnitOptions, write_units

    options = UnitOptions(user=args.user, env_file=args.env_file, state_dir=args.state_dir)
    for path in write_units(Path(args.out), options):
        print(f"wrote {path}")
    return 0


def _user(args: argparse.Namespace) -> int:
    from admin.cli import run

    return run(args)


COMMANDS: dict[str, tuple[Handler, str]] = {
    "up": (_up, "migrate, start what is missing and run every process (embedded defaults)"),
    "api": (_api, "run the HTTP API and pages"),
    "engine": (_engine, "run the SIP/media engine (or, with --node/--host, a node of an edge)"),
    "edge": (_edge, "run the SIP edge alone for the media nodes that join it"),
    "worker": (_worker, "run a background-job worker"),
    "router": (_router, "run the routing service (queues, offers, routing timers)"),
    "migrate": (_migrate, "upgrade the database schema to the newest revision"),
    "seed-demo": (_seed_demo, "insert the demo center if the database has no users"),
    "check-config": (_check_config, "validate the declarative configuration files"),
    "simulate": (_simulate, "what-if: replay a day against a staffing plan (real routing)"),
    "recordings-reconcile": (_recordings, "list recordings whose files and rows disagree"),
    "recordings-retention": (_recordings, "delete recordings past their queue's retention"),
    "systemd-units": (_systemd_units, "write systemd units for every process `up` runs"),
    "user": (_user, "manage users: add, disable, enable, passwd, list"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callcenter", description="Call-center backend")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_handler, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if name == "simulate":
            from metrics.whatif_cli import add_arguments

            add_arguments(command)
        if name == "worker":
            command.add_argument(
                "--burst", action="store_true", help="exit when the queues are empty"
            )
        if name == "engine":
            command.add_argument(
                "--node", help="this media node's name (its slots' prefix); auto: the host name"
            )
            command.add_argument(
                "--host",
                help="the address this node's slots listen on; auto: the host name's address",
            )
        if name == "systemd-units":
            command.add_argument("--out", required=True, help="directory to write the units to")
            command.add_argument("--user", default="callcenter", help="user the units run as")
            command.add_argument(
                "--env-file",
                default="/etc/callcenter/callcenter.env",
                help="environment file (CALLCENTER_* settings) the units read",
            )
            command.add_argument(
                "--state-dir", default="/var/lib/callcenter", help="CALLCENTER_STATE_DIR"
            )
        if name == "user":
            from admin.cli import add_arguments

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
