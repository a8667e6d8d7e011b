"""``python -m taskfleet_grant_feeds --port 8090``: serve the recorded grant feeds until stopped."""

from __future__ import annotations

import argparse
import logging

from taskfleet_grant_feeds.server import make_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = make_server(args.host, args.port)
    base = f"http://{args.host}:{server.server_address[1]}"
    print(f"grant feeds serving on {base}", flush=True)
    for name, path in (
        ("WORLD_BANK_API_URL", "/worldbank/api/v3/projects"),
        ("IATI_API_URL", "/iati/datastore"),
        ("GCF_API_URL", "/gcf/v1"),
        ("CORDIS_DATA_URL", "/cordis/data"),
        ("EU_PORTAL_API_URL", "/eu/search-api/prod/rest"),
    ):
        print(f"  {name}={base}{path}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
