"""Atomic fetch: a message is never only in a worker's memory, not even for the milliseconds after its pop.

kombu's Redis transport pops with BRPOP and records the message in ``unacked`` in a second round trip. A
worker killed between the two (SIGKILL, OOM, node loss) loses that message for good: it is in no list, no
``unacked`` hash and no schedule, so neither the reaper nor the visibility timeout can bring it back. A
3,000-job chaos run with a kill every 8 s lost one job exactly so.

Here one Lua script pops from the first non-empty list (priority order, as kombu's BRPOP) *and* writes kombu's
unacked entry, its index, this worker's in-flight set, its registration and heartbeat. Valkey runs a script
atomically: a message is always in a list or attributed to a worker, which the reaper returns when the worker
is lost (Sidekiq Pro's super_fetch, BullMQ's moveToActive make the same move).

A script cannot block, so an idle worker waits on the queue's doorbell instead (``XREAD BLOCK`` on a capped
stream every publish rings, ``DOORBELL_KEY``), then fetches again. A push that does not ring (kombu's own
restore of a message) is picked up at the latest when the wait times out (kombu's ``brpop_timeout``, 1 s).
The script returns the doorbell's last entry id with an empty answer, so a publish between the empty fetch
and the wait is never missed.
"""

from __future__ import annotations

from taskfleet_core.broker import keys

#: XADD MAXLEN ~ this: the doorbell only has to hold the entries that arrived since a waiter's last id.
DOORBELL_MAXLEN = 100

#: KEYS: the lists in priority order (n = ARGV[1]), then unacked HASH, unacked index ZSET, this worker's in-flight
#: SET, the workers HASH, this worker's heartbeat key, then the doorbell STREAM of each queue consumed.
#: ARGV: n, now (epoch s), worker id, registration JSON, heartbeat TTL in ms.
#: Returns {list key, item} for a message (registered when it is a kombu envelope; anything else is returned
#: unregistered for the caller to dead-letter), or {"", last id of each doorbell} when every list is empty.
FETCH_LUA = """
local n = tonumber(ARGV[1])
for i = 1, n do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    local ok, msg = pcall(cjson.decode, item)
    if ok and type(msg) == 'table' and type(msg.properties) == 'table' then
      local props = msg.properties
      local info = props.delivery_info
      local tag = props.delivery_tag
      if type(info) == 'table' and (type(tag) == 'string' or type(tag) == 'number') then
        tag = tostring(tag)
        local ex = cjson.encode(info.exchange or '')
        local rk = cjson.encode(info.routing_key or '')
        redis.call('ZADD', KEYS[n + 2], ARGV[2], tag)
        redis.call('HSET', KEYS[n + 1], tag, '[' .. item .. ',' .. ex .. ',' .. rk .. ']')
        redis.call('SADD', KEYS[n + 3], tag)
        redis.call('HSETNX', KEYS[n + 4], ARGV[3], ARGV[4])
        redis.call('SET', KEYS[n + 5], ARGV[2], 'PX', ARGV[5], 'NX')
      end
    end
    return {KEYS[i], item}
  end
end
local ids = {''}
for i = n + 6, #KEYS do
  local last = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 1)
  ids[#ids + 1] = last[1] and last[1][1] or '0-0'
end
return ids
"""


def doorbell_key(queue: str) -> str:
    return keys.DOORBELL_KEY.format(queue=queue)
