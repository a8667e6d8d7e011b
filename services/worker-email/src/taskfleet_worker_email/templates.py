"""Emails rendered from Jinja templates (text + HTML) kept next to this module.

The HTML template autoescapes (grant titles come from third-party sources); the text one
does not, so an ampersand stays an ampersand.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


@functools.cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("taskfleet_worker_email", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def days_phrase(days_left: float) -> str:
    if days_left < 1:
        hours = max(1, int(days_left * 24))
        return f"{hours} hour{'s' if hours != 1 else ''}"
    days = int(days_left)
    return f"{days} day{'s' if days != 1 else ''}"


def render_deadline_email(
    *,
    user_name: str | None,
    company_name: str,
    grant: dict[str, Any],
    deadline: datetime,
    now: datetime,
    window_days: int,
    score: float,
    reasons: list[str],
) -> tuple[str, str, str]:
    """``(subject, text, html)`` for one (user, grant, window) alert."""
    days_left = (deadline - now).total_seconds() / 86400
    context = {
        "user_name": user_name,
        "company_name": company_name,
        "grant": grant,
        "days_phrase": days_phrase(days_left),
        "deadline_text": deadline.strftime("%A %d %B %Y, %H:%M UTC"),
        "window_days": window_days,
        "score": score,
        "reasons": reasons,
    }
    subject = f"Deadline in {days_phrase(days_left)}: {grant['title']}"[:200]
    env = environment()
    text = env.get_template("deadline.txt.j2").render(context)
    html = env.get_template("deadline.html.j2").render(context)
    return subject, text, html
