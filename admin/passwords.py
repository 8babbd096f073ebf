"""The password policy for sign-in and SIP passwords: long enough, not a common password, not
the user name. Every broken rule is reported, naming the field, so a form can show them all."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from callcenter.errors import InvalidInput

MIN_LENGTH = 10
MAX_LENGTH = 128
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")


@cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
    )


def password_problems(password: str, *, username: str) -> list[str]:
    """What is wrong with ``password`` for ``username`` (empty: acceptable)."""
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(f"至少 {MIN_LENGTH} 个字符 / must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"最多 {MAX_LENGTH} 个字符 / must be at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in common_passwords() or lowered.removeprefix("pw") in common_passwords():
        problems.append("是常见密码 / is a commonly used password")
    if username and username.lower() in lowered:
        problems.append("不能包含用户名 / must not contain the user name")
    if password and len(set(password)) < 4:
        problems.append("至少 4 个不同字符 / must use at least 4 different characters")
    if password != password.strip():
        problems.append("首尾不能是空格 / must not begin or end with a space")
    return problems


def check_password(password: str, *, username: str, field: str) -> None:
    """Raise InvalidInput naming ``field`` and every rule the password breaks."""
    problems = password_problems(password, username=username)
    if problems:
        raise InvalidInput(
            f"{field}: " + "; ".join(problems),
            details={"problems": [{"field": field, "message": p} for p in problems]},
        )
