"""``callcenter recordings-reconcile`` and ``callcenter recordings-retention``."""

from __future__ import annotations

import json

from callcenter.context import build_context
from config.settings import Settings


def run(command: str, settings: Settings) -> int:
    ctx = build_context(settings)
    try:
        if command == "recordings-reconcile":
            from recordings.reconcile import reconcile_and_store

            report = reconcile_and_store(ctx)
            print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
            return 1 if report.findings else 0
        from recordings.retention import apply_retention

        deleted = apply_retention(ctx, actor="cli:retention")
        print(f"{len(deleted)} recording(s) deleted by retention")
        return 0
    finally:
        ctx.close()
