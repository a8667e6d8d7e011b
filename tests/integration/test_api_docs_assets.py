"""Swagger UI and ReDoc load from the API itself: no CDN (an offline or locked-down cluster sees them)."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize(("page", "marker"), [("/docs", "SwaggerUIBundle"), ("/redoc", "<redoc")])
def test_docs_pages_reference_only_assets_the_api_serves(api, page, marker) -> None:
    html = api.get(page, headers={"Authorization": ""})
    assert html.status_code == 200 and marker in html.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assets = [s for s in sources if s.endswith((".js", ".css", ".png"))]
    assert assets, html.text
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not served by the API"  # no https://cdn...
        response = api.get(asset)
        assert response.status_code == 200 and len(response.content) > 1000, asset
    assert not re.search(r"(src|href)=\"https?:", html.text), "an external asset"
