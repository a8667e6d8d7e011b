"""Deadline emails from the templates: the HTML escapes third-party text, the plain text does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskfleet_worker_email.templates import days_phrase, render_deadline_email

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_text_and_html_with_escaping() -> None:
    subject, text, html = render_deadline_email(
        user_name="Ada",
        company_name="Nordwind & Co",
        grant={"id": 1, "title": "Wind <b>power</b> & storage", "url": "https://example.org/g/1"},
        deadline=NOW + timedelta(days=7, hours=3),
        now=NOW,
        window_days=7,
        score=0.734,
        reasons=["Sector match: energy"],
    )
    assert subject == "Deadline in 7 days: Wind <b>power</b> & storage"
    assert '"Wind <b>power</b> & storage" closes in 7 days: Monday 08 June 2026, 15:00 UTC.' in text
    assert "score of 73/100" in text and "  - Sector match: energy" in text and "https://example.org/g/1" in text
    assert "Wind &lt;b&gt;power&lt;/b&gt; &amp; storage" in html and "<b>power</b>" not in html
    assert "Nordwind &amp; Co" in html and "<li>Sector match: energy</li>" in html


def test_days_phrase() -> None:
    assert days_phrase(0.5) == "12 hours"
    assert days_phrase(1.2) == "1 day"
    assert days_phrase(14.9) == "14 days"
