-- Prelude shared by every convoy script (scripts.py prepends it to each one).
--
-- KEYS, for every script: the keys of ONE queue, all under one hash tag, in the order of
-- django_convoy.keys.QueueKeys:
--   1 queued      ZSET id -> (100 - priority) * 2^42 + seq    (ZPOPMIN = next job)
--   2 scheduled   ZSET id -> due time (ms, Redis clock)
--   3 processing  ZSET id -> lease deadline (ms); deadline < now means jammed
--   4 failed      ZSET id -> final failure time (ms)
--   5 body        HASH id -> JSON body, opaque here
--   6 meta        HASH id -> "enqueued_ms|attempts|jams|priority"
--   7 run         HASH id -> "token|started_ms|worker"   (present only while held)
--   8 rerun       HASH id -> "priority|body" of a rerun requested while processing
--   9 errors      HASH id -> JSON of the last error
--  10 seq         STRING counter: FIFO sequence and fencing tokens
--  11 wake        LIST wake-up tokens for idle workers (kept at <= 1 element)
--  12 paused      STRING present while the queue is paused
--  13 stats       HASH processed / failed totals; born: when the queue was first used
--  14 throughput  HASH "processed:<minute>" / "failed:<minute>" -> count
--  15 errorlog    LIST of today's errors (only for scripts that record failures)
--
-- A job id lives in exactly one of queued, scheduled, processing, failed, or none of them
-- (released). body/meta exist exactly while it is in one of those four.
local K = {
  queued = KEYS[1], scheduled = KEYS[2], processing = KEYS[3], failed = KEYS[4],
  body = KEYS[5], meta = KEYS[6], run = KEYS[7], rerun = KEYS[8], errors = KEYS[9],
  seq = KEYS[10], wake = KEYS[11], paused = KEYS[12], stats = KEYS[13],
  throughput = KEYS[14], errorlog = KEYS[15],
}
local PRIORITY_STEP = 4398046511104 -- 2^42 sequence numbers per priority level

-- Redis does not roll back a script that fails half-way, so a key that holds garbage (written
-- by hand?) must stop every script before its first write, not in the middle of one.
do
  local seq = redis.call('GET', K.seq)
  if seq and not tonumber(seq) then
    error('convoy: ' .. K.seq .. ' holds ' .. string.format('%q', seq) .. ', not a number')
  end
  -- The keys scripts write to after a step that cannot be undone (a ZPOPMIN, a ZREM): a job
  -- moved into a key of the wrong type would be lost half-way.
  for _, name in ipairs({'queued', 'scheduled', 'processing', 'failed', 'stats'}) do
    local found = redis.call('TYPE', K[name])['ok']
    local wanted = name == 'stats' and 'hash' or 'zset'
    if found ~= 'none' and found ~= wanted then
      error('convoy: ' .. K[name] .. ' is a ' .. found .. ', not a ' .. wanted)
    end
  end
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Lua would print large numbers in exponent notation; Redis needs every digit.
local function int(n)
  return string.format('%.0f', n)
end

local function read_meta(id)
  local raw = redis.call('HGET', K.meta, id)
  local e, a, j, p
  if raw then
    e, a, j, p = string.match(raw, '^(%d+)|(%d+)|(%d+)|(-?%d+)$')
  end
  -- A missing or hand-mangled record must not stop the queue: start from zero.
  return {
    enqueued = tonumber(e) or 0, attempts = tonumber(a) or 0,
    jams = tonumber(j) or 0, priority = tonumber(p) or 0,
  }
end

local function write_meta(id, m)
  redis.call('HSET', K.meta, id,
    int(m.enqueued) .. '|' .. m.attempts .. '|' .. m.jams .. '|' .. m.priority)
end

local function wake_one()
  if redis.call('LLEN', K.wake) == 0 then
    redis.call('RPUSH', K.wake, '1')
  end
end

local function push_queued(id, priority)
  local seq = redis.call('INCR', K.seq)
  redis.call('ZADD', K.queued, int((100 - priority) * PRIORITY_STEP + seq), id)
end

-- The token of the run holding id, or nil.
local function run_token(id)
  local run = redis.call('HGET', K.run, id)
  if run then
    return string.match(run, '^(%d+)|')
  end
  return nil
end

local function owns(id, token)
  return token ~= nil and run_token(id) == token
    and redis.call('ZSCORE', K.processing, id) ~= false
end

local function stop_run(id)
  redis.call('ZREM', K.processing, id)
  redis.call('HDEL', K.run, id)
end

-- Forget a job whose life ended: its id is free to be queued again.
local function release(id)
  redis.call('HDEL', K.body, id)
  redis.call('HDEL', K.meta, id)
  redis.call('HDEL', K.errors, id)
end

-- A new run of id: replaces any failed record of an earlier run.
local function start_fresh(id, body, priority, now)
  redis.call('ZREM', K.failed, id)
  redis.call('HDEL', K.errors, id)
  redis.call('HSET', K.body, id, body)
  write_meta(id, {enqueued = now, attempts = 0, jams = 0, priority = priority})
end

local function state_of(id, now)
  if redis.call('ZSCORE', K.queued, id) then return 'queued' end
  local deadline = redis.call('ZSCORE', K.processing, id)
  if deadline then
    if tonumber(deadline) < now then return 'jammed' end
    return 'processing'
  end
  if redis.call('ZSCORE', K.scheduled, id) then return 'scheduled' end
  if redis.call('ZSCORE', K.failed, id) then return 'failed' end
  return nil
end

-- Count an outcome in the totals and in the per-minute throughput of the last hour.
local function tick(outcome, now)
  redis.call('HINCRBY', K.stats, outcome, 1)
  local minute = math.floor(now / 60000)
  if redis.call('HINCRBY', K.throughput, outcome .. ':' .. minute, 1) == 1
      and redis.call('HLEN', K.throughput) > 130 then
    for _, field in ipairs(redis.call('HKEYS', K.throughput)) do
      local m = tonumber(string.match(field, ':(%d+)$'))
      if m == nil or m < minute - 60 then
        redis.call('HDEL', K.throughput, field)
      end
    end
  end
end

-- If a rerun was requested while id ran, queue it now as a fresh run.
local function queue_pending_rerun(id, now)
  local pending = redis.call('HGET', K.rerun, id)
  if not pending then return false end
  redis.call('HDEL', K.rerun, id)
  local priority, body = string.match(pending, '^(-?%d+)|(.*)$')
  -- A mangled entry still queues the rerun; the worker then fails its unreadable body.
  priority, body = tonumber(priority) or 0, body or pending
  start_fresh(id, body, priority, now)
  push_queued(id, priority)
  wake_one()
  return true
end

local function log_error(error_json, keep, ttl_seconds)
  if K.errorlog then
    redis.call('LPUSH', K.errorlog, error_json)
    redis.call('LTRIM', K.errorlog, 0, keep - 1)
    redis.call('EXPIRE', K.errorlog, ttl_seconds)
  end
end

-- Drop failed records older than the retention (a bounded batch per call).
local function trim_failed(now, ttl_ms)
  local old = redis.call('ZRANGEBYSCORE', K.failed, '-inf', int(now - ttl_ms), 'LIMIT', 0, 100)
  for _, id in ipairs(old) do
    redis.call('ZREM', K.failed, id)
    release(id)
  end
end

-- The final failure of the run holding id (already stopped): keep the record, or queue the
-- rerun that was requested meanwhile. Returns 'failed' or 'rerun'.
local function finish_failed(id, now, failed_ttl_ms)
  tick('failed', now)
  if queue_pending_rerun(id, now) then return 'rerun' end
  redis.call('ZADD', K.failed, int(now), id)
  trim_failed(now, failed_ttl_ms)
  return 'failed'
end

-- Django Tasks runs (task_*.lua): the result id a stored body carries, or ''. pcall: a body
-- added by other code may not be JSON at all.
local function result_of(stored)
  local ok, data = pcall(cjson.decode, stored or '')
  if ok and type(data) == 'table' and type(data.payload) == 'table'
      and type(data.payload.result) == 'string' then
    return data.payload.result
  end
  return ''
end
