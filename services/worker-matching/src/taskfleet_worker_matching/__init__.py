"""The matching queue's worker. Its contracts are declared in core; their implementations land here."""
