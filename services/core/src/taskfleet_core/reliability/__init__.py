"""What keeps at-least-once delivery safe: the fleet-wide rate limiter, locks, idempotent effects, the
dead-letter queue, the guard against malformed messages and the drain shutdown mode."""
