"""The wallboard's chart, drawn on the server as SVG: today's answer rate per hour against the
target line, with lettering big enough to read across a room. Pure: figures in, markup out."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

WIDTH = 1200
HEIGHT = 380
LEFT = 90
RIGHT = 20
TOP = 50
BOTTOM = 60


@dataclass(frozen=True)
class HourFigure:
    hour: int  # 0-23, local time of the center
    offered: int
    answer_rate: float | None  # None: no calls offered that hour


def answer_rate_svg(
    hours: list[HourFigure], *, target: float, title: str, target_label: str
) -> str:
    """One bar per hour 00-23 (green at or above the target, red under it), the target as a
    dashed line, the rate printed over each bar that had calls."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / 24
    by_hour = {h.hour: h for h in hours}

    def y_of(rate: float) -> float:
        return TOP + plot_h * (1 - max(0.0, min(1.0, rate)))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" font-family="Noto Sans CJK SC, sans-serif">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#101820"/>',
        f'<text x="{LEFT}" y="34" font-size="28" fill="#e8eef2">{escape(title)}</text>',
    ]
    for tick in (0.0, 0.5, 1.0):
        y = y_of(tick)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            'stroke="#2c3e50" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{LEFT - 10}" y="{y + 8:.1f}" font-size="22" fill="#8aa0b2" '
            f'text-anchor="end">{tick * 100:.0f}%</text>'
        )
    for hour in range(24):
        x = LEFT + hour * slot
        if hour % 2 == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - BOTTOM + 30}" font-size="20" '
                f'fill="#8aa0b2" text-anchor="middle">{hour:02d}</text>'
            )
        figure = by_hour.get(hour)
        if figure is None or figure.answer_rate is None:
            continue
        rate = figure.answer_rate
        y = y_of(rate)
        colour = "#2e7d32" if rate >= target else "#c62828"
        parts.append(
            f'<rect class="bar" data-hour="{hour}" data-rate="{rate:.3f}" x="{x + 4:.1f}" '
            f'y="{y:.1f}" width="{slot - 8:.1f}" height="{TOP + plot_h - y:.1f}" fill="{colour}"/>'
        )
        parts.append(
            f'<text x="{x + slot / 2:.1f}" y="{y - 8:.1f}" font-size="18" fill="#e8eef2" '
            f'text-anchor="middle">{rate * 100:.0f}</text>'
        )
    target_y = y_of(target)
    parts.append(
        f'<line class="target" x1="{LEFT}" y1="{target_y:.1f}" x2="{WIDTH - RIGHT}" '
        f'y2="{target_y:.1f}" stroke="#ffd54f" stroke-width="3" stroke-dasharray="12 8"/>'
    )
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{target_y - 10:.1f}" font-size="22" fill="#ffd54f" '
        f'text-anchor="end">{escape(target_label)} {target * 100:.0f}%</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
