"""The pages' charts, drawn on the server as SVG: a rate per hour against a target line, with
lettering big enough to read across a room. One drawing (``hourly_rate_svg``) serves the
wallboard's answer rate today (one series) and the what-if page's plans side by side (two
series). Pure: figures in, markup out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

WIDTH = 1200
HEIGHT = 380
LEFT = 90
RIGHT = 20
TOP = 50
BOTTOM = 60
ON_TARGET = "#2e7d32"
UNDER_TARGET = "#c62828"


@dataclass(frozen=True)
class HourFigure:
    hour: int  # 0-23, local time of the center
    offered: int
    answer_rate: float | None  # None: no calls offered that hour


@dataclass(frozen=True)
class Series:
    """One row of bars: a rate per local hour (hours without calls left out). ``colour``
    None: each bar green at or over the target and red under it; else this colour, and the
    series is named in the legend."""

    name: str
    rates: Mapping[int, float]
    colour: str | None = None


def answer_rate_svg(
    hours: list[HourFigure], *, target: float, title: str, target_label: str
) -> str:
    """One bar per hour 00-23 (green at or above the target, red under it), the target as a
    dashed line, the rate printed over each bar that had calls."""
    rates = {h.hour: h.answer_rate for h in hours if h.answer_rate is not None}
    return hourly_rate_svg(
        [Series("", rates)], target=target, title=title, target_label=target_label
    )


def hourly_rate_svg(
    series: Sequence[Series], *, target: float, title: str, target_label: str
) -> str:
    """Bars per hour 00-23, one per series side by side in the hour's slot, the target as a
    dashed line. With one series the rate (in %) is printed over each bar; with more the bars
    are too narrow for it (the page's table beside the chart has the numbers)."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / 24
    count = max(1, len(series))
    bar_w = (slot - 8) / count

    def y_of(rate: float) -> float:
        return TOP + plot_h * (1 - max(0.0, min(1.0, rate)))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" font-family="Noto Sans CJK SC, sans-serif">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#101820"/>',
        f'<text x="{LEFT}" y="34" font-size="28" fill="#e8eef2">{escape(title)}</text>',
    ]
    legend_x = WIDTH - RIGHT
    for item in reversed(series):
        if item.colour is None or not item.name:
            continue
        width = 24 + 18 * len(item.name)
        legend_x -= width
        parts.append(
            f'<rect class="legend" x="{legend_x}" y="16" width="18" height="18" '
            f'fill="{item.colour}"/>'
        )
        parts.append(
            f'<text x="{legend_x + 24}" y="32" font-size="20" fill="#e8eef2">'
            f"{escape(item.name)}</text>"
        )
        legend_x -= 16
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
        for index, item in enumerate(series):
            rate = item.rates.get(hour)
            if rate is None:
                continue
            y = y_of(rate)
            colour = item.colour or (ON_TARGET if rate >= target else UNDER_TARGET)
            left = x + 4 + index * bar_w
            named = f' data-series="{escape(item.name)}"' if item.name else ""
            parts.append(
                f'<rect class="bar" data-hour="{hour}" data-rate="{rate:.3f}"{named} '
                f'x="{left:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{TOP + plot_h - y:.1f}" fill="{colour}"/>'
            )
            if count == 1:
                parts.append(
                    f'<text x="{left + bar_w / 2:.1f}" y="{y - 8:.1f}" font-size="18" '
                    f'fill="#e8eef2" text-anchor="middle">{rate * 100:.0f}</text>'
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
