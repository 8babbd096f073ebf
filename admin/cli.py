"""``callcenter user ...``: manage users from a shell, e.g. the first admin of a new database.

    callcenter user add --role admin USERNAME        password from a prompt (twice), or the
                                                     first line of stdin when it is not a tty
    callcenter user add --role agent --extension 2001 USERNAME   then the SIP password
    callcenter user disable USERNAME / enable USERNAME
    callcenter user passwd USERNAME                  a new password, same input rules
    callcenter user list

The same services as the API: the password policy, the audit log (actor ``cli:<os user>``),
the edge's credentials.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from callcenter.errors import CallCenterError
from callcenter.models import Role

if TYPE_CHECKING:
    from callcenter.context import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="user_command", required=True)
    add = sub.add_parser("add", help="create a user (the password is read, never an argument)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[str(r) for r in Role])
    add.add_argument("--display-name", default=None, help="default: the user name")
    add.add_argument("--department", default=None, help="department code (department staff)")
    add.add_argument("--extension", default=None, help="agents: the SIP extension")
    add.add_argument("--queue", action="append", default=[], metavar="CODE=LEVEL")
    add.add_argument("--team", default=None)
    add.add_argument("--shift", default=None)
    for name, text in [
        ("disable", "disable a user (their tokens stop at once)"),
        ("enable", "re-enable a disabled user"),
        ("passwd", "set a new password (older tokens stop working)"),
    ]:
        sub.add_parser(name, help=text).add_argument("username")
    sub.add_parser("list", help="list users")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def read_secret(label: str) -> str:
    """A prompt (asked twice) on a terminal; otherwise the next line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass(f"{label}: ")
        if getpass.getpass(f"{label} (again): ") != first:
            raise CallCenterError(f"the two {label.lower()}s differ")
        return first
    line = sys.stdin.readline()
    if not line:
        raise CallCenterError(f"{label.lower()} expected on stdin")
    return line.rstrip("\r\n")


def _print_error(exc: CallCenterError) -> None:
    print(f"error: {exc.message}", file=sys.stderr)
    for problem in exc.details.get("problems", []):
        print(f"  {problem['field']}: {problem['message']}", file=sys.stderr)


def _list_users(ctx: AppContext, args: argparse.Namespace, actor: str) -> None:
    from admin import users

    with ctx.sessions() as session:
        for user in users.list_users(session):
            state = "active" if user.active else "disabled"
            extension = f" ext {user.agent.extension}" if user.agent else ""
            print(f"{user.id}\t{user.username}\t{user.role}\t{state}{extension}")


def _agent_settings(args: argparse.Namespace) -> dict[str, Any]:
    queues = {}
    for item in args.queue:
        code, _, level = item.partition("=")
        if not level.isdigit():
            raise CallCenterError(f"--queue {item!r}: expected CODE=LEVEL (1-10)")
        queues[code] = int(level)
    return {
        "extension": args.extension or "",
        "sip_password": read_secret("SIP password"),
        "queues": queues,
        "team": args.team,
        "shift": args.shift,
    }


def _add_user(ctx: AppContext, args: argparse.Namespace, actor: str) -> None:
    from admin import users
    from admin.schemas import UserCreate

    password = read_secret("Password")
    agent = _agent_settings(args) if args.role == "agent" else None
    data = UserCreate.model_validate(
        {
            "username": args.username,
            "password": password,
            "role": args.role,
            "display_name": args.display_name or args.username,
            "department": args.department,
            "agent": agent,
        }
    )
    created = users.create(ctx, actor=actor, data=data)
    print(f"user {created.username} created (id {created.id}, role {created.role})")


def _change_user(ctx: AppContext, args: argparse.Namespace, actor: str) -> None:
    """passwd, disable, enable."""
    from admin import users
    from admin.schemas import UserUpdate

    with ctx.sessions() as session:
        user_id = users.find_user(session, username=args.username).id
    if args.user_command == "passwd":
        update = UserUpdate(password=read_secret("New password"))
    else:
        update = UserUpdate(active=args.user_command == "enable")
    users.update(ctx, actor=actor, user_id=user_id, data=update)
    done = {"passwd": "password changed", "disable": "disabled", "enable": "enabled"}
    print(f"user {args.username}: {done[args.user_command]}")


# ``callcenter user <command>`` -> what it does
USER_COMMANDS: dict[str, Callable[[AppContext, argparse.Namespace, str], None]] = {
    "list": _list_users,
    "add": _add_user,
    "passwd": _change_user,
    "disable": _change_user,
    "enable": _change_user,
}


def run(args: argparse.Namespace) -> int:
    from callcenter.context import build_context
    from callcenter.migrate import upgrade
    from config.settings import load_settings

    settings = load_settings()
    upgrade(settings.database_url)
    ctx = build_context(settings)
    actor = _actor()
    try:
        USER_COMMANDS[args.user_command](ctx, args, actor)
        return 0
    except CallCenterError as exc:
        _print_error(exc)
        return 1
    except ValidationError as exc:
        print("error: invalid input", file=sys.stderr)
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            print(f"  {field}: {error['msg']}", file=sys.stderr)
        return 1
    finally:
        ctx.close()
