"""Small inline SVG charts rendered on the server: no front-end toolchain, no script."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape


def _dot(point: str, color: str) -> str:
    """The newest batch as a dot: a line of one point would not show."""
    x, y = point.split(",")
    return f'<circle cx="{x}" cy="{y}" r="2.5" fill="{color}"/>'


def line_chart(points: Sequence[tuple[float, float]], *, start: float, end: float, label: str, unit: str = "",
               width: int = 360, height: int = 80, color: str = "#0b7285") -> str:
    """One series over ``[start, end]`` (epoch seconds) as an ``<svg>`` with its max labelled."""
    pad_left, pad_top, pad_bottom = 4, 14, 12
    inner_w, inner_h = width - pad_left - 4, height - pad_top - pad_bottom
    shown = [(t, v) for t, v in points if start <= t <= end]
    top = max((v for _, v in shown), default=0.0) or 1.0
    span = max(end - start, 1.0)

    def xy(t: float, v: float) -> str:
        return f"{pad_left + (t - start) / span * inner_w:.1f},{pad_top + inner_h - v / top * inner_h:.1f}"

    path = " ".join(xy(t, v) for t, v in shown)
    last = f"{shown[-1][1]:,.0f}" if shown else "no batches"
    title = f"{label}: max {top:,.0f}{unit}, last {last}{unit if shown else ''}"
    return (
        f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'data-points="{len(shown)}" aria-label="{escape(title)}">'
        f'<text x="{pad_left}" y="10" font-size="10">{escape(title)}</text>'
        f'<line x1="{pad_left}" y1="{pad_top + inner_h}" x2="{pad_left + inner_w}" y2="{pad_top + inner_h}" '
        f'stroke="#ccc"/>'
        + (f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>' if shown else "")
        + (_dot(xy(*shown[-1]), color) if shown else "")
        + f'<text x="{pad_left}" y="{height - 1}" font-size="9" fill="#666">-60 min</text>'
        f'<text x="{pad_left + inner_w}" y="{height - 1}" font-size="9" fill="#666" text-anchor="end">now</text>'
        "</svg>"
    )
