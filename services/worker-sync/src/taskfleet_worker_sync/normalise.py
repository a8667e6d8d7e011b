"""What every source normaliser produces, and the parsing they share (amounts, dates, lists).

Sources drift: amounts arrive as numbers, as strings with thousands separators or with a
decimal comma; dates as ISO, ``1/21/1999 12:00:00 AM`` or with ``+0100`` offsets; single
values sometimes wrapped in lists. These helpers accept all of them and return None rather
than raise, so one odd record never stops a sync.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from taskfleet_data.models import LIVE_STATUSES

from taskfleet_worker_sync.countries import to_alpha2


@dataclass
class NormalisedGrant:
    """One source record mapped onto the grant model's fields (see docs/grant-pipeline.md)."""

    source: str
    external_id: str
    title: str
    description: str = ""
    funder: str | None = None
    countries: list[str] = field(default_factory=list)
    sectors: list[str] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)
    amount: Decimal | None = None
    currency: str | None = None
    open_date: datetime | None = None
    deadline: datetime | None = None
    end_date: datetime | None = None
    status: str = "open"
    url: str | None = None
    #: the source's own modification mark, for the sync watermark (ISO string, comparable)
    modified: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def content_hash(self) -> str:
        """sha256 of the normalised fields (not the raw record, not ``modified``): equal hash, nothing to write."""
        data = asdict(self)
        for key in ("raw", "modified"):
            data.pop(key)
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    def is_active(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        if self.status not in LIVE_STATUSES:
            return False
        if self.deadline is not None and self.deadline < now:
            return False
        return not (self.end_date is not None and self.end_date < now)

    def effective_status(self, now: datetime | None = None) -> str:
        """An open or forthcoming call whose deadline has passed is closed, whatever the source still says."""
        now = now or datetime.now(UTC)
        if self.status in {"open", "forthcoming"} and self.deadline is not None and self.deadline < now:
            return "closed"
        return self.status


def first(value: Any) -> Any:
    """The first item of a list-wrapped value (EU portal metadata, IATI narratives), or the value itself."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def text(value: Any) -> str:
    value = first(value)
    if value is None:
        return ""
    if isinstance(value, dict):  # World Bank v2: {"cdata!": "..."}
        value = value.get("cdata!") or next(iter(value.values()), "")
    return re.sub(r"\s+", " ", str(value)).strip()


_THOUSANDS_COMMA = re.compile(r"^-?\d{1,3}(,\d{3})+$")
_THOUSANDS_DOT = re.compile(r"^-?\d{1,3}(\.\d{3}){2,}$")


def parse_amount(value: Any) -> Decimal | None:
    """``95000000``, ``"150,000,000"``, ``"2073781.25"``, ``"2073781,25"``, ``"1.234.567,5"`` -> Decimal."""
    value = first(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        amount = Decimal(str(value))
    else:
        s = re.sub(r"[\s\u00a0'€$£]|EUR|USD", "", str(value))
        if not s:
            return None
        if "," in s and "." in s:
            s = s.replace(".", "").replace(",", ".") if s.rfind(",") > s.rfind(".") else s.replace(",", "")
        elif _THOUSANDS_COMMA.match(s):
            s = s.replace(",", "")
        elif "," in s:
            s = s.replace(",", ".")  # decimal comma
        elif _THOUSANDS_DOT.match(s):
            s = s.replace(".", "")
        try:
            amount = Decimal(s)
        except InvalidOperation:
            return None
    return amount.quantize(Decimal("0.01")) if amount.is_finite() else None


_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y", "%Y%m%d")


def parse_datetime(value: Any) -> datetime | None:
    """ISO dates and date-times (``Z``, ``+0100``, ``+01:00``), epoch milliseconds, and the few legacy formats."""
    value = first(value)
    if value in (None, ""):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    s = str(value).strip()
    s = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", s)  # +0100 -> +01:00
    parsed = _parse_text(s)
    if parsed is None:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_text(s: str) -> datetime | None:
    """ISO first, then the legacy formats; None when none fits."""
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        pass
    for fmt in _FORMATS:
        try:
            return datetime.strptime(s, fmt)
        except ValueError:
            continue
    return None


def countries(values: Iterable[Any]) -> list[str]:
    """Alpha-2 codes, unique, in order; unknown names and region codes are dropped."""
    out: list[str] = []
    for value in values:
        code = to_alpha2(str(value)) if value else None
        if code and code not in out:
            out.append(code)
    return out


def unique(values: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for value in values:
        s = text(value)
        if s and s not in out:
            out.append(s)
    return out


def decode_json_list(value: Any) -> list[str]:
    """EU portal keywords: a list holding a JSON-encoded list string, or plain strings (both occur)."""
    out: list[str] = []
    for item in as_list(value):
        if isinstance(item, str) and item.strip().startswith("["):
            try:
                out.extend(str(v) for v in json.loads(item))
                continue
            except json.JSONDecodeError:
                pass
        out.append(str(item))
    return unique(out)
