"""The wallboard's alerts, judged on a live snapshot: answer rate and service level under target
(with hysteresis), staffing under the minimum, long waits, recordings out of step.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from callcenter.context import AppContext
from metrics.alerts import AlertState, rate_breached, step
from metrics.live_config import metric_config
from metrics.live_keys import MetricKeys
from recordings import reconcile


def staffing_minimum(ctx: AppContext, local: datetime) -> int | None:
    moment = local.time()
    found = None
    for minimum in ctx.config.shifts.minimums:
        start, end = minimum.start, minimum.end
        covers = start <= moment < end if start < end else (moment >= start or moment < end)
        if covers:
            found = max(found or 0, minimum.agents)
    return found


# The rate alerts: kind → (the shift figure judged, the snapshot's target key, wording).
RATE_ALERTS: dict[str, tuple[str, str]] = {
    "answer_rate": ("resolved_answer_rate", "answer_rate_target"),
    "service_level": ("resolved_service_level", "service_level_target"),
}


def _rate_alert_text(
    kind: str, snapshot: Mapping[str, Any], queue: str, rate: float, resolved: int, target: float
) -> dict[str, str]:
    zh, en = _qname(snapshot, queue, "zh-CN"), _qname(snapshot, queue, "en")
    if kind == "answer_rate":
        return {
            "zh-CN": f"{zh}本班次已结束来电 {resolved} 通，接通率 {rate:.1%} 低于目标 {target:.0%}",
            "en": f"{en}: shift answer rate {rate:.1%} of {resolved} resolved calls is under "
            f"the {target:.0%} target",
        }
    return {
        "zh-CN": f"{zh}本班次已结束来电 {resolved} 通，服务水平 {rate:.1%} 低于目标 {target:.0%}",
        "en": f"{en}: shift service level {rate:.1%} of {resolved} resolved calls is under "
        f"the {target:.0%} target",
    }


def alerts(ctx: AppContext, snapshot: Mapping[str, Any], local: datetime) -> list[dict[str, Any]]:
    """Answer rate and service level under target for the shift, staffing under the minimum,
    long waits.

    The answer-rate and service-level alerts follow their condition with hysteresis
    (metrics/alerts.py, one policy for both: ``[alerts]`` in shifts.toml); their state is kept
    in Redis (``metrics:alerts``) so every API process shows the same alerts.
    """
    config = metric_config(ctx)
    policy = config.alert_policy
    now = local.timestamp()
    out: list[dict[str, Any]] = []
    scopes = [("all", snapshot["center"]), *list(snapshot["queues"].items())]
    redis: Any = ctx.redis
    state_key = MetricKeys(ctx.keys)("alerts")
    stored: Mapping[str, str] = redis.hgetall(state_key)
    changed: dict[str, str] = {}
    current = snapshot.get("current_shift")
    period = str(snapshot["shifts"].get(current, {}).get("occurrence", "")) if current else ""
    for kind, (figure, target_key) in RATE_ALERTS.items():
        target = float(snapshot[target_key])
        for queue, scope in scopes:
            shift = scope["windows"]["shift"]
            rate, resolved = shift[figure], int(shift["resolved"])
            field_name = f"{kind}|{queue}"
            before = AlertState.from_text(stored.get(field_name), period)
            after = step(before, rate_breached(rate, resolved, target, policy), now, policy)
            if after.to_text() != stored.get(field_name):
                changed[field_name] = after.to_text()
            if not after.active or rate is None:
                continue
            out.append(
                {
                    "kind": kind,
                    "queue": queue,
                    "value": rate,
                    "threshold": target,
                    "resolved": resolved,
                    "figure": f"shift_{figure}",
                    **_rate_alert_text(kind, snapshot, queue, rate, resolved, target),
                }
            )
    if changed:
        redis.hset(state_key, mapping=changed)
    minimum = staffing_minimum(ctx, local)
    logged_in = int(snapshot["center"]["logged_in"])
    if minimum is not None and logged_in < minimum:
        out.append(
            {
                "kind": "staffing",
                "queue": "all",
                "value": logged_in,
                "threshold": minimum,
                "zh-CN": f"在线坐席 {logged_in} 人，低于本时段最低 {minimum} 人",
                "en": f"{logged_in} agents logged in, under the minimum of {minimum}",
            }
        )
    for queue, scope in snapshot["queues"].items():
        longest = scope["longest_wait_seconds"]
        limit = scope["long_wait_alert_seconds"]
        if longest is not None and limit is not None and longest > limit:
            out.append(
                {
                    "kind": "long_wait",
                    "queue": queue,
                    "value": round(longest, 1),
                    "threshold": limit,
                    "zh-CN": f"{_qname(snapshot, queue, 'zh-CN')}有来电已等待 "
                    f"{int(longest)} 秒（阈值 {limit} 秒）",
                    "en": f"{_qname(snapshot, queue, 'en')}: a call has waited {int(longest)} s "
                    f"(threshold {limit} s)",
                }
            )
    mismatches = reconcile.wallboard_alert(ctx)  # recordings, rows and files disagree
    if mismatches is not None:
        out.append(mismatches)
    return out


def _qname(snapshot: Mapping[str, Any], queue: str, lang: str) -> str:
    if queue == "all":
        return "全中心" if lang == "zh-CN" else "Center"
    return str(snapshot["queues"][queue]["name"][lang])
