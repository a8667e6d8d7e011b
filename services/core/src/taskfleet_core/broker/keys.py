"""Valkey key names shared by the API, Beat and workers (one place, as arq does)."""

KEY_PREFIX = "taskfleet:"

#: Hash per submitted job: task name, queue, submitted_at. Lets the API tell "unknown id" from PENDING.
JOB_KEY = KEY_PREFIX + "job:{job_id}"

#: kombu's separator between a queue name and its priority sub-list (``queue\x06\x16N``).
PRIORITY_SEPARATOR = "\x06\x16"
#: The priority steps kombu's Redis transport uses; 0 (the highest) is the bare list.
PRIORITY_STEPS = (0, 3, 6, 9)

#: Per-queue in-flight bookkeeping, so each queue's unacked work is countable on its own.
UNACKED_KEY = "unacked:{queue}"
UNACKED_INDEX_KEY = "unacked_index:{queue}"
UNACKED_MUTEX_KEY = "unacked_mutex:{queue}"

#: Set by the API when a job is revoked; workers skip such a job even if they missed the broadcast.
REVOKED_KEY = KEY_PREFIX + "revoked:{job_id}"
