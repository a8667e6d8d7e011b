"""The feed server: the five source APIs' real request/response shapes over the recorded data.

Paging is capped server-side (World Bank 20 rows, IATI 25, EU portal 20) so every paged
source spans several pages whatever the client asks for -- as real APIs cap ``rows``.
A control API under ``/_feeds/`` lets tests inject failures, edit a record and read
request counts: ``POST /_feeds/fail {"source": "gcf", "status": 500, "times": -1}``,
``POST /_feeds/edit {"source": "gcf", "id": "FP001", "set": {"ProjectName": "..."}}``,
``GET /_feeds/stats``, ``POST /_feeds/reset``.
"""

from __future__ import annotations

import email.parser
import io
import json
import logging
import re
import threading
import zipfile
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from taskfleet_grant_feeds.data import Feeds, build

log = logging.getLogger("taskfleet.grant_feeds")

MAX_ROWS = {"world_bank": 20, "iati": 25, "eu_portal": 20}
ID_FIELDS = {"world_bank": "id", "iati": "iati_identifier", "gcf": "ApprovedRef", "cordis": "id"}
EU_STATUS = {"31094501", "31094502", "31094503"}


class FeedState:
    """Records, injected failures and request counts, shared by the handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.feeds: Feeds = build()
        self.failures: dict[str, dict[str, int]] = {}
        self.requests: Counter[str] = Counter()

    def records(self, source: str) -> list[dict[str, Any]]:
        if source == "cordis":
            return self.feeds.cordis_horizon + self.feeds.cordis_h2020
        records: list[dict[str, Any]] = getattr(self.feeds, source)
        return records

    def take_failure(self, source: str) -> int | None:
        with self.lock:
            self.requests[source] += 1
            rule = self.failures.get(source)
            if not rule or rule["times"] == 0:
                return None
            if rule["times"] > 0:
                rule["times"] -= 1
            return rule["status"]

    def edit(self, source: str, record_id: str, changes: dict[str, Any]) -> bool:
        for record in self.records(source):
            rid = record["metadata"]["identifier"][0] if source == "eu_portal" else str(record[ID_FIELDS[source]])
            if rid == record_id:
                for key, value in changes.items():
                    target = record
                    *path, last = key.split(".")
                    for part in path:
                        target = target[part]
                    target[last] = value
                return True
        return False


def _int(params: dict[str, list[str]], name: str, default: int) -> int:
    try:
        return int(params.get(name, [default])[0])
    except ValueError:
        return default


class Handler(BaseHTTPRequestHandler):
    state: FeedState
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)

    # --- plumbing ---------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, payload: Any, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode())

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _route(self, method: str) -> None:
        # read the body whatever the answer: left unread, it would corrupt the next request on a kept-alive connection
        self.body = self._body() if method == "POST" else b""
        url = urlsplit(self.path)
        params = parse_qs(url.query)
        path = url.path.rstrip("/")
        if path.startswith("/_feeds"):
            return self._control(method, path)
        routes = {
            ("GET", "/worldbank/api/v3/projects"): ("world_bank", self._world_bank),
            ("GET", "/iati/datastore/activity/select"): ("iati", self._iati),
            ("GET", "/gcf/v1/projects"): ("gcf", self._gcf),
            ("POST", "/eu/search-api/prod/rest/search"): ("eu_portal", self._eu_portal),
        }
        match = re.fullmatch(r"/cordis/data/cordis-(HORIZON|h2020)projects-json\.zip", path)
        handler: Callable[[dict[str, list[str]]], None]
        if method == "GET" and match:
            programme = match.group(1)
            source, handler = "cordis", lambda _params: self._cordis(programme)
        elif (method, path) in routes:
            source, handler = routes[(method, path)]
        else:
            return self._json({"error": f"no route {method} {path}"}, 404)
        failure = self.state.take_failure(source)
        if failure is not None:
            return self._json({"error": "injected failure"}, failure)
        with self.state.lock:
            handler(params)

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    # --- control ----------------------------------------------------------------------------
    def _control(self, method: str, path: str) -> None:
        body = json.loads(self.body or b"{}") if method == "POST" else {}
        if path == "/_feeds/stats":
            with self.state.lock:
                return self._json({"requests": dict(self.state.requests), "counts": self._counts()})
        if path == "/_feeds/reset" and method == "POST":
            with self.state.lock:
                self.state.reset()
            return self._json({"ok": True})
        if path == "/_feeds/fail" and method == "POST":
            with self.state.lock:
                self.state.failures[body["source"]] = {"status": int(body.get("status", 500)), "times": body["times"]}
            return self._json({"ok": True})
        if path == "/_feeds/edit" and method == "POST":
            with self.state.lock:
                found = self.state.edit(body["source"], body["id"], body["set"])
            return self._json({"ok": found}, 200 if found else 404)
        if path == "/_feeds/duplicates":
            return self._json(self.state.feeds.duplicates)
        return self._json({"error": "unknown control"}, 404)

    def _counts(self) -> dict[str, int]:
        return {s: len(self.state.records(s)) for s in ("world_bank", "iati", "gcf", "cordis", "eu_portal")}

    # --- the five sources ---------------------------------------------------------------------
    def _world_bank(self, params: dict[str, list[str]]) -> None:
        if params.get("format", [""])[0] != "json":
            return self._send(400, b"<error>format=json is required</error>", "application/xml")
        records = self.state.feeds.world_bank
        if "strdate" in params:
            since = params["strdate"][0]
            records = [r for r in records if r.get("boardapprovaldate", "")[:10] >= since]
        rows = min(_int(params, "rows", 10), MAX_ROWS["world_bank"])
        offset = _int(params, "os", 0)
        page = records[offset : offset + rows]
        self._json(
            {
                "rows": rows,
                "os": str(offset),
                "page": str(offset // rows + 1),
                "total": str(len(records)),
                "projects": {r["id"]: r for r in page},  # a dict keyed by project id, not a list
                "facets": {},
            }
        )

    def _iati(self, params: dict[str, list[str]]) -> None:
        if not self.headers.get("Ocp-Apim-Subscription-Key"):
            return self._json({"statusCode": 401, "message": "Access denied due to missing subscription key."}, 401)
        records = self.state.feeds.iati
        query = params.get("q", ["*:*"])[0]
        since = re.search(r"last_updated_datetime:\[(\S+) TO \*\]", query)
        if since:
            records = [r for r in records if r.get("last_updated_datetime", "") >= since.group(1)]
        records = sorted(records, key=lambda r: r["iati_identifier"])
        rows = min(_int(params, "rows", 10), MAX_ROWS["iati"])
        start = _int(params, "start", 0)
        self._json(
            {
                "responseHeader": {"status": 0, "QTime": 3, "params": {k: v[0] for k, v in params.items()}},
                "response": {"numFound": len(records), "start": start, "docs": records[start : start + rows]},
            }
        )

    def _gcf(self, params: dict[str, list[str]]) -> None:
        self._json(self.state.feeds.gcf)  # the whole list, no paging (as the real API)

    def _cordis(self, programme: str) -> None:
        buffer = io.BytesIO()
        feeds = self.state.feeds
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            if programme == "HORIZON":  # the layout since 2026-07: one file per project
                for record in feeds.cordis_horizon:
                    archive.writestr(f"json/project-rcn-{record['rcn']}_en.json", json.dumps(record))
                ids = {r["id"] for r in feeds.cordis_horizon}
            else:  # the older layout: one project.json array
                archive.writestr("json/project.json", json.dumps(feeds.cordis_h2020))
                ids = {r["id"] for r in feeds.cordis_h2020}
            orgs = [o for o in feeds.cordis_organizations if o["projectID"] in ids]
            archive.writestr("json/organization.json", json.dumps(orgs))
            archive.writestr("json/euroSciVoc.json", "[]")
        self._send(200, buffer.getvalue(), "application/zip")

    def _eu_portal(self, params: dict[str, list[str]]) -> None:
        if params.get("apiKey", [""])[0] == "" or "text" not in params:
            return self._json({"error": "apiKey and text are required"}, 400)
        content_type = self.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            return self._json({"error": "expected multipart/form-data"}, 415)
        message = email.parser.BytesParser().parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + self.body
        )
        parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True) for p in message.walk()}
        raw = parts.get("query")
        query = json.loads(raw if isinstance(raw, bytes) else b"{}")
        wanted = _status_terms(query)
        records = [r for r in self.state.feeds.eu_portal if not wanted or r["metadata"]["status"][0] in wanted]
        size = min(_int(params, "pageSize", 50), MAX_ROWS["eu_portal"])
        number = max(1, _int(params, "pageNumber", 1))
        page = records[(number - 1) * size : number * size]
        self._json(
            {
                "apiVersion": "2.119",
                "terms": "***",
                "text": params["text"][0],
                "pageNumber": number,
                "pageSize": size,
                "totalResults": len(records),
                "results": page,
            }
        )


def _status_terms(query: dict[str, Any]) -> set[str]:
    """The ``terms`` on ``status`` inside an Elasticsearch-like bool query (range is ignored, as live)."""
    found: set[str] = set()
    for clause in query.get("bool", {}).get("must", []):
        values = clause.get("terms", {}).get("status")
        if values:
            found |= {v for v in values if v in EU_STATUS}
    return found


def make_server(host: str, port: int) -> ThreadingHTTPServer:
    state = FeedState()
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
