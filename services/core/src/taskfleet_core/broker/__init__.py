"""The broker: one Valkey client per process, kombu's Redis transport with its guards, every Valkey key the
fleet writes (``keys``), lost-binding repair for producers, and what is waiting and running per queue."""
