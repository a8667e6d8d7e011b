"""Sparklines as inline SVG drawn on the server: no charting library, no script, nothing for the CSP to allow."""

from __future__ import annotations

WIDTH = 120
HEIGHT = 24


def points(values: list[int], width: int = WIDTH, height: int = HEIGHT) -> str:
    """A polyline's ``points`` for ``values`` (oldest first), scaled to the box; a flat line at the bottom for
    all zeros, empty for fewer than two values."""
    if len(values) < 2:
        return ""
    top = max(values) or 1
    step = width / (len(values) - 1)
    pad = 1.0  # keep the stroke inside the box
    return " ".join(f"{i * step:.1f},{pad + (height - 2 * pad) * (1 - v / top):.1f}" for i, v in enumerate(values))
