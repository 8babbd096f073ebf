"""Tables every part shares: users with their roles, and the append-only audit log."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.db import Base, utcnow


class Role(enum.StrEnum):
    agent = "agent"
    lead = "lead"  # shift lead / supervisor (客服班长/主管)
    qa = "qa"  # 绩效考核小组
    department = "department"  # department staff receiving tickets
    admin = "admin"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=16))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    language: Mapped[str] = mapped_column(String(8), default="zh-CN")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by a password change, a disable or a role change (migration 0005_admin): bearer
    # tokens and sessions issued before this instant are refused (auth.check_user_current).
    credentials_changed_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Who did what to which object. Rows are never updated or deleted (triggers refuse it)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)


class ConfigVersion(Base):
    """A declarative file's document as an admin stored it (migration 0005_admin): ``version``
    counts up per file; a rollback stores an older document again as a new version."""

    __tablename__ = "config_versions"
    __table_args__ = (UniqueConstraint("file", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    file: Mapped[str] = mapped_column(String(32))  # "queues", "menu", ...
    version: Mapped[int]
    document: Mapped[dict[str, Any]] = mapped_column()
    diff: Mapped[list[Any]] = mapped_column(default=list)  # [{key, before, after}]
    author: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
    rollback_of: Mapped[int | None]  # the version whose document this one restores
