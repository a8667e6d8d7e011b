"""Domain data of the grant-matching product: sessions on a migrated database (``db``), async engines
(``engine``), the models (``models`` for grants and sync state, ``accounts`` for companies, users, matches
and notifications), Alembic migrations, full-text search and embeddings (numpy, the ``embeddings`` extra).

Only services that read or write the database depend on this package; Beat and the queue exporter do not.
"""
