"""Transactional enqueue: a job is published if and only if the data change that asked for it commits.

``await enqueue_in(session, "matching.calculate_company_matches", kwargs={"company_id": 7})`` validates the
arguments against the task's contract and adds an ``outbox`` row to the session's transaction, with the job id
fixed now (returned at once, so its status can be asked for). A rollback takes the row with it: nothing is
published. A ``Relay`` publishes committed rows to their queues with that id, marks them sent and prunes them
later; docs/outbox.md has the whole design (claims, wake-ups, crash semantics, figures).
"""

from taskfleet_data.outbox.enqueue import UnknownTask, enqueue_in
from taskfleet_data.outbox.model import OutboxMessage
from taskfleet_data.outbox.relay import Pending, Publisher, Relay, RelayThread

__all__ = ["OutboxMessage", "Pending", "Publisher", "Relay", "RelayThread", "UnknownTask", "enqueue_in"]
