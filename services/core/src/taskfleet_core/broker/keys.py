"""Every Valkey key the fleet writes: one catalogue shared by the API, Beat, workers and the exporter (as arq does).

Each template is formatted with ``str.format``; its comment says what the key holds and when it expires.
Keys under ``KEY_PREFIX`` are the fleet's own; the others belong to kombu's Redis transport, which the fleet
reads (KEDA, the exporter) or repairs (lost bindings), so their names must match kombu's exactly.
"""

KEY_PREFIX = "taskfleet:"

# -- Jobs (API) ---------------------------------------------------------------------------------------------

#: HASH per submitted job: task name, queue, submitted_at (and ``replay_of`` for a DLQ replay). Lets the API
#: tell "unknown id" from PENDING. TTL: the result's TTL plus a day, plus the job's delay.
JOB_KEY = KEY_PREFIX + "job:{job_id}"
#: STRING "1", set by the API when a job is revoked; workers skip such a job even if they missed the
#: broadcast. TTL: the job record's TTL plus the visibility timeout.
REVOKED_KEY = KEY_PREFIX + "revoked:{job_id}"

# -- Reliability (workers) ----------------------------------------------------------------------------------

#: STRING: the token of the execution holding an overlap lock (``<worker>|<job id>:<random>``, fresh per
#: delivery; reliability/locks.py). TTL: the caller's lock TTL, renewed every third of it by the holder.
LOCK_KEY = KEY_PREFIX + "lock:{name}"
#: STRING integer: the last fence of an overlap lock, raised by every acquisition (Valkey's clock in µs, or the last
#: fence + 1); stores protected by the lock refuse writes carrying a lower fence than they saw. No TTL: it must
#: only ever grow (a few bytes per lock).
FENCE_KEY = KEY_PREFIX + "lock:{name}:fence"
#: STRING: the JSON result of a side effect already done once (reliability/idempotency.py). TTL: 7 days.
IDEMPOTENCY_KEY = KEY_PREFIX + "done:{scope}:{key}"
#: STRING: the token of the copy of a job doing that effect right now (an idempotency claim).
#: TTL: the queue's hard time limit plus a margin, below the visibility timeout; renewed every third of it while
#: the effect runs, and kept (not released) when the effect's outcome is unknown.
CLAIM_KEY = KEY_PREFIX + "doing:{scope}:{key}"
#: ZSET of a queue's dead-letter entry ids scored by dead-letter time (reliability/dlq.py). No TTL: entries
#: older than the retention (30 days) are trimmed from it on every add.
DLQ_INDEX_KEY = KEY_PREFIX + "dlq:{queue}"
#: STRING: one dead-letter entry as JSON (payload, exception, traceback summary, timestamps). TTL: 30 days.
DLQ_ENTRY_KEY = KEY_PREFIX + "dlq:entry:{entry_id}"
#: STRING: what became of an entry that left the DLQ (JSON: replayed as which job, or purged, and when), written
#: by the same script that removed the entry, so a retried or concurrent request gets that result back instead
#: of acting twice. TTL: a day (``dlq.SETTLED_SECONDS``).
DLQ_SETTLED_KEY = KEY_PREFIX + "dlq:settled:{entry_id}"
#: ZSET sliding-window log of a fleet-wide rate limit, one member per slot taken (reliability/ratelimit.py).
#: TTL: the limit's window, renewed on every slot taken.
RATE_KEY = KEY_PREFIX + "ratelimit:{name}"
#: STRING counter of redeliveries of one message at one retry count (reliability/message_guard.py).
#: TTL: 7 days.
REDELIVERY_KEY = KEY_PREFIX + "redeliveries:{job_id}:{retries}"

# -- Delayed work (the fleet's transport writes, housekeeping promotes; broker/schedule.py) -------------------

#: ZSET of a queue's delayed messages (countdown, ETA, retry backoff, rate-limit deferral): member = the Celery
#: task id (else kombu's delivery tag), score = due time in epoch seconds. Not a waiting list: KEDA must not
#: scale on it. No TTL: the promoter removes each entry when it pushes it onto the queue's list.
SCHEDULED_KEY = KEY_PREFIX + "scheduled:{queue}"
#: HASH member -> the target list key (the queue's list or priority sub-list), a newline, and the kombu envelope
#: as kombu would have LPUSHed it. Written and removed together with the ZSET entry (one Lua script). No TTL.
SCHEDULED_MESSAGES_KEY = KEY_PREFIX + "scheduled:{queue}:messages"

# -- Atomic fetch (every publisher rings, consumers wait on it; broker/fetch.py) -----------------------------

#: STREAM, one entry per publish onto a queue's lists (its content is irrelevant): a worker whose fetch found
#: the lists empty blocks on it (XREAD BLOCK) instead of BRPOP, since BRPOP's pop is not atomic with kombu's
#: unacked write. Capped (XADD MAXLEN ~ 100), so it holds no work and stays a few hundred bytes.
DOORBELL_KEY = KEY_PREFIX + "doorbell:{queue}"

# -- Worker liveness (workers write, any housekeeping process reaps; broker/inflight.py, reliability/reaper.py) --

#: STRING: the unix time of a worker process's last heartbeat, refreshed from its event-loop timer (the one
#: that refreshes the probe file). ``{worker}`` is ``host:pid:token`` of the consuming main process.
#: TTL: WORKER_LOST_SECONDS; a worker whose key has expired is lost and its in-flight messages are reaped.
WORKER_HEARTBEAT_KEY = KEY_PREFIX + "worker:{worker}"
#: HASH of known worker processes: worker id -> JSON (queue, host, pid, nodename, its unacked keys, since).
#: Written with every heartbeat (and HSETNX with each delivery); a field is removed by the worker at a clean
#: shutdown or by the reaper once the worker's in-flight set is empty. No TTL.
WORKERS_KEY = KEY_PREFIX + "workers"
#: SET of the delivery tags a worker process holds (acks_late, in kombu's unacked hash): added in the same
#: MULTI as kombu's unacked entry, removed with it (ack, reject, restore). No TTL: the reaper empties and
#: deletes the set of a lost worker.
INFLIGHT_KEY = KEY_PREFIX + "inflight:{worker}"

# -- Beat ---------------------------------------------------------------------------------------------------

#: STRING: the token (host:pid:random) of the one Beat that sends (taskfleet_beat/leader.py).
#: TTL: BEAT_LOCK_TTL_SECONDS, renewed three times per TTL by the leader.
BEAT_LEADER_KEY = KEY_PREFIX + "beat:leader"
#: HASH entry name -> JSON ``{"due", "sent_at", "outcome", "by"}``: due times up to ``due`` (unix seconds) are
#: handled (sent, or given up as missed) and when the entry was last sent (taskfleet_beat/catchup.py). Shared by
#: every Beat, so a standby that takes over (or a restarted Beat) sends what fell due in the gap. Written only by
#: the leader, compare-and-set under the lock. No TTL (one small field per schedule entry).
BEAT_LAST_SENT_KEY = KEY_PREFIX + "beat:last-sent"
#: STRING per schedule occurrence: the token of the leader that claimed it (``SET NX`` in the same script as the
#: record above, before the send; taskfleet_beat/catchup.py). ``{due_ms}`` is the nominal due time in unix
#: milliseconds, so every Beat names an occurrence alike: one that exists is never sent again, whatever a
#: restarted Beat or a second leader believes. TTL: the entry's period plus its catch-up window plus a minute
#: (after that, no Beat would send that due time any more).
BEAT_OCCURRENCE_KEY = KEY_PREFIX + "beat:occurrence:{entry}:{due_ms}"
#: HASH entry name -> count of due times no Beat sent because they were older than the entry's catch-up window
#: (exposed as ``taskfleet_beat_missed_total``; survives Beat restarts, so the counter never resets). No TTL.
BEAT_MISSED_KEY = KEY_PREFIX + "beat:missed"

# -- kombu's Redis transport (kombu writes these; tasks/app.py names the unacked keys per queue) ------------

#: kombu's separator between a queue name and its priority sub-list (``queue\x06\x16N``).
PRIORITY_SEPARATOR = "\x06\x16"
#: The priority steps kombu's Redis transport uses; 0 (the highest) is the bare list.
PRIORITY_STEPS = (0, 3, 6, 9)

#: Per-queue in-flight bookkeeping (HASH of unacked messages, ZSET index by delivery time, restore mutex),
#: so each queue's unacked work is countable on its own. No TTL (kombu deletes entries on ack; the mutex
#: expires after kombu's ``unacked_mutex_expire``).
UNACKED_KEY = "unacked:{queue}"
UNACKED_INDEX_KEY = "unacked_index:{queue}"
UNACKED_MUTEX_KEY = "unacked_mutex:{queue}"

#: SET of an exchange's bindings (``Channel.keyprefix_queue``); re-declared by broker/bindings.py when Valkey
#: lost it. No TTL.
BINDING_KEY = "_kombu.binding.{exchange}"
