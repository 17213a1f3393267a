-- Prelude shared by every convoy script (scripts.py prepends it to each one).
--
-- KEYS, for every script: the keys of ONE queue, all under one hash tag, in the order of
-- django_convoy.keys.QueueKeys:
--   1 queued      ZSET id -> (100 - priority) * 2^42 + seq    (ZPOPMIN = next job)
--   2 scheduled   ZSET id -> due time (ms, Redis clock)
--   3 processing  ZSET id -> lease deadline (ms); deadline < now means jammed
--   4 failed      ZSET id -> final failure time (ms)
--   5 jobs        HASH id -> "enqueued_ms|attempts|jams|priority|" .. JSON body (opaque here)
--   6 run         HASH id -> "token|started_ms|attempt|worker"   (present only while held; the
--                 attempt is the run's: a claim writes it here alone, sparing the job's record,
--                 body and all, a rewrite; the record's attempts count the runs that ended)
--   7 rerun       HASH id -> "priority|body" of a rerun requested while processing
--   8 errors      HASH id -> JSON of the last error
--   9 seq         STRING counter: FIFO sequence and fencing tokens
--  10 wake        LIST wake-up tokens for idle workers (kept at <= 1 element)
--  11 paused      STRING present while the queue is paused
--  12 stats       HASH processed / failed totals; born: when the queue was first used; the
--                 counters and histograms the metrics read (count_in, observe: below)
--  13 throughput  HASH "processed:<minute>" / "failed:<minute>" -> count
--  14 idle        ZSET "lease_ms|worker id" -> until when (ms) it waits to be handed jobs, and
--                 how many: deadline * 1000 + free slots (exact in a double; see waiting_worker)
--  15 held        ZSET id -> until when (ms) adds of id are refused (hold_for: a throttle);
--                 -hold_ms while its job is live: the hold its end will start (start_hold)
-- Flow control (docs/design.rst, "Flow control"): a job may carry a group key.
--  16 group       HASH id -> group key, for each job with a group that has a record
--  17 grouped     ZSET id -> queued score: the queued jobs that have a group (queued holds
--                 the others): the place of a grouped queued job
--  18 lanes       ZSET, all scores 0, "group\0score\0id" per grouped queued job: each group's
--                 lane, in queue order (ZRANGEBYLEX), an index of grouped
--  19 ring        ZSET group -> turn: groups with queued jobs that may be claimed from
--  20 parked      ZSET group -> until (ms; +inf: at GROUP_CONCURRENCY until a run of it ends):
--                 groups with queued jobs held back; a group is in ring or parked, not both
--  21 groups      ZSET group -> its processing runs: every group with queued or processing jobs
--  22 flow        HASH tat (the RATE_LIMIT bucket: when it is full again, ms), tat:<group> (a
--                 group's GROUP_RATE_LIMIT bucket), held (until when the last claim was held
--                 back by RATE_LIMIT), turn (the ring's counter), plain (the ungrouped jobs' turn)
--  23 EXTRA_KEY   one more key some scripts take: the day's error log (fail, jamguard), the
--                 result HASH of a Django task's run (task_*, tick), or the result a job's last
--                 run returned (keep_result, inspect)
--  24, 25         the tick script's schedule keys (keys.ScheduleKeys; see tick.lua); inspect's
--                 24: the job's progress
-- Not in KEYS: each waiting worker's inbox (LIST of runs handed to it), whose name add.lua
-- learns from idle; it shares the hash tag, so it lives in this queue's slot.
--
-- A job id lives in exactly one of queued, scheduled, processing, failed, or none of them
-- (released). Its jobs record exists exactly while it is in one of those four. The counters
-- share the record with the body so that a queued job costs two entries, not three.
local K = {
  queued = KEYS[1], scheduled = KEYS[2], processing = KEYS[3], failed = KEYS[4],
  jobs = KEYS[5], run = KEYS[6], rerun = KEYS[7], errors = KEYS[8], seq = KEYS[9],
  wake = KEYS[10], paused = KEYS[11], stats = KEYS[12], throughput = KEYS[13], idle = KEYS[14],
  held = KEYS[15], group = KEYS[16], grouped = KEYS[17], lanes = KEYS[18], ring = KEYS[19],
  parked = KEYS[20], groups = KEYS[21], flow = KEYS[22],
}
local QUEUE_KEYS = 22 -- the keys above; a script's own keys follow them
local EXTRA_KEY = KEYS[QUEUE_KEYS + 1]
local PRIORITY_STEP = 4398046511104 -- 2^42 sequence numbers per priority level

-- Redis does not roll back a script that fails half-way, so a key that holds garbage (written
-- by hand?) must stop a script before its first write, not in the middle of one. Every script
-- that writes after a step it cannot undo (a ZPOPMIN, a ZREM) calls this first; read-only
-- scripts and those whose only writes follow a check of the same key skip its cost. The add
-- checks only the keys it may write, in a plan-then-write order (add.lua).
-- Every key a script may write, and its type; EXTRA_KEY is checked when the script has one.
local KEY_TYPES = {
  {'queued', 'zset'}, {'scheduled', 'zset'}, {'processing', 'zset'}, {'failed', 'zset'},
  {'jobs', 'hash'}, {'run', 'hash'}, {'rerun', 'hash'}, {'errors', 'hash'}, {'wake', 'list'},
  {'stats', 'hash'}, {'throughput', 'hash'}, {'idle', 'zset'}, {'held', 'zset'},
}
-- Flow control's keys: absent unless a job has a group or a limit was spent, so one EXISTS
-- spares the unlimited path their TYPE checks.
local FLOW_KEY_TYPES = {
  {'group', 'hash'}, {'grouped', 'zset'}, {'lanes', 'zset'}, {'ring', 'zset'},
  {'parked', 'zset'}, {'groups', 'zset'}, {'flow', 'hash'},
}

local function refuse_wrong_type(key, wanted)
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= wanted then
    error('convoy: ' .. key .. ' is a ' .. found .. ', not a ' .. wanted)
  end
end

-- A read that is also its key's type check: on a key of another type (garbage) the script stops
-- there, the key named as refuse_wrong_type names it; on a sound key it costs nothing more.
local function checked_read(wanted, command, key, ...)
  local reply = redis.pcall(command, key, ...)
  if type(reply) == 'table' and reply.err then
    refuse_wrong_type(key, wanted)
    error(reply.err)
  end
  return reply
end

-- The sequence counter must be one, or INCRBY would refuse it half-way.
local function refuse_bad_seq()
  local seq = checked_read('string', 'GET', K.seq)
  if seq and not string.match(seq, '^%d+$') then
    error('convoy: ' .. K.seq .. ' holds ' .. string.format('%q', seq) .. ', not a counter')
  end
end

-- Flow control's keys (an add that may write them checks them alone: add.lua).
local function refuse_corrupt_flow_keys()
  if redis.call('EXISTS', K.group, K.grouped, K.lanes, K.ring, K.parked, K.groups, K.flow) > 0 then
    for _, entry in ipairs(FLOW_KEY_TYPES) do
      refuse_wrong_type(K[entry[1]], entry[2])
    end
  end
end

-- extra_type: the type EXTRA_KEY must have, if the script writes it (the error log: 'list').
local function refuse_corrupt_keys(extra_type)
  refuse_bad_seq()
  for _, entry in ipairs(KEY_TYPES) do
    refuse_wrong_type(K[entry[1]], entry[2])
  end
  refuse_corrupt_flow_keys()
  if extra_type and EXTRA_KEY then
    refuse_wrong_type(EXTRA_KEY, extra_type)
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

-- Commands over many fields or members, in chunks that unpack takes (an even number, so that
-- pairs stay whole): a few calls per script, not one per job.
local CHUNK = 1000

-- HMGET of many fields, or ZMSCORE of many members (a missing one: false).
local function read_all(command, key, fields)
  local out = {}
  for s = 1, #fields, CHUNK do
    local got = redis.call(command, key, unpack(fields, s, math.min(s + CHUNK - 1, #fields)))
    for k = 1, #got do out[s + k - 1] = got[k] end
  end
  return out
end

-- command (HDEL, HSET, ZADD ...) on key with every item of args.
local function call_all(command, key, args)
  for s = 1, #args, CHUNK do
    redis.call(command, key, unpack(args, s, math.min(s + CHUNK - 1, #args)))
  end
end

-- Counters and histograms, kept fleet-wide in the stats HASH by the scripts that already run
-- (django_convoy.store.counters reads them): "added", "duplicate", "retried", "stale" (fenced
-- writes refused), "recovered:<action>" (jam guard), the totals "processed" and "failed"
-- (tick), and per histogram "<name>:le:<bound>" (observations in that bucket, not cumulative;
-- "inf" past the last bound) and "<name>:sum_ms". A script gathers its increments in
-- counted and writes them once, before it returns (write_counts): one HINCRBY, or an HMGET and
-- an HSET for several fields, whatever the number of jobs.
-- The bounds, in ms; Python reads them from this line (store/counters.py): change them here.
local HISTOGRAM_BOUNDS_MS = {
  5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000, 3600000,
}
local BUCKETS = #HISTOGRAM_BOUNDS_MS
local counted = {} -- stats field -> increment not yet written
local counted_fields = {}
local observed = {} -- histogram name -> {[bucket index] = n, sum = ms}, not yet written

local function count_in(field, n)
  if not n or n == 0 then return end
  if not counted[field] then counted_fields[#counted_fields + 1] = field end
  counted[field] = (counted[field] or 0) + n
end

-- One observation of ms in histogram name: 'wait' (from when a job could first run to its
-- first run's start) or 'duration' (from a run's start to its reported outcome), both by
-- Redis's clock. Per job, so kept to a few table updates: names are built once per call.
local function observe(name, ms)
  local h = observed[name]
  if not h then
    h = {sum = 0}
    observed[name] = h
  end
  if ms < 0 then ms = 0 end
  local i = 1
  while i <= BUCKETS and ms > HISTOGRAM_BOUNDS_MS[i] do i = i + 1 end
  h[i] = (h[i] or 0) + 1
  h.sum = h.sum + ms
end

-- Write what count_in and observe gathered (every script that counts calls this last).
local function write_counts()
  for name, h in pairs(observed) do
    for i = 1, BUCKETS + 1 do
      if h[i] then count_in(name .. ':le:' .. (HISTOGRAM_BOUNDS_MS[i] or 'inf'), h[i]) end
    end
    count_in(name .. ':sum_ms', h.sum)
  end
  local n = #counted_fields
  if n == 1 then
    redis.call('HINCRBY', K.stats, counted_fields[1], int(counted[counted_fields[1]]))
  elseif n > 1 then
    local old = redis.call('HMGET', K.stats, unpack(counted_fields))
    local pairs_out = {}
    for i, field in ipairs(counted_fields) do
      pairs_out[2 * i - 1] = field
      pairs_out[2 * i] = int((tonumber(old[i]) or 0) + counted[field])
    end
    redis.call('HSET', K.stats, unpack(pairs_out))
  end
  counted, counted_fields, observed = {}, {}, {}
end

-- The record of id: {enqueued, attempts, jams, priority, body}. A missing record reads as
-- an empty body, and a record without the counters (mangled by hand) as all body: either way
-- the worker fails its unreadable body instead of the queue stopping.
-- A job record as read_job gives it, from its raw text ('' when it has none).
local function parse_job(raw)
  local _, stop, e, a, j, p = string.find(raw, '^(%d+)|(%d+)|(%d+)|(-?%d+)|')
  if not stop then
    return {enqueued = 0, attempts = 0, jams = 0, priority = 0, body = raw}
  end
  return {
    enqueued = tonumber(e), attempts = tonumber(a), jams = tonumber(j),
    priority = tonumber(p), body = string.sub(raw, stop + 1),
  }
end

local function read_job(id)
  return parse_job(redis.call('HGET', K.jobs, id) or '')
end

-- "enqueued_ms|attempts|jams|priority": the record's head, as inspect and browse return it.
local function counters_of(m)
  return int(m.enqueued) .. '|' .. m.attempts .. '|' .. m.jams .. '|' .. m.priority
end

local function write_job(id, m)
  redis.call('HSET', K.jobs, id, counters_of(m) .. '|' .. m.body)
end

-- Just the priority, without copying the body out of Redis.
local function priority_of(id)
  local raw = redis.call('HGET', K.jobs, id)
  return tonumber(raw and string.match(raw, '^%d+|%d+|%d+|(-?%d+)|')) or 0
end

-- A scheduled job that is due now: its priority, read as priority_of does. A job that never
-- ran (a delay, not a retry) counts as enqueued when it became due, so that its wait (the
-- histogram) and its age in the queue start then, not at its add; only those rewrite the record.
local function became_due(id, due_ms)
  local raw = redis.call('HGET', K.jobs, id)
  local _, stop, e, a, p = string.find(raw or '', '^(%d+)|(%d+)|%d+|(-?%d+)|')
  if not stop then return 0 end
  if a == '0' and tonumber(e) < due_ms then
    local m = read_job(id)
    m.enqueued = due_ms
    write_job(id, m)
  end
  return tonumber(p)
end

local function wake_one()
  if redis.call('LLEN', K.wake) == 0 then
    redis.call('RPUSH', K.wake, '1')
  end
end

-- Flow control: groups, their lanes and the ring; the token buckets of the rate limits.
-- A grouped queued job is in grouped (its place) and in its group's lane (an index: lanes); its
-- group is in groups while it has queued or processing jobs (scored by its processing runs),
-- and, while it has queued jobs, in ring (claimable, by turn) or parked (held back). Nothing of
-- this exists while no job has a group: groups_used() then spares every other lookup.
local grouped_jobs = nil -- whether any job has a group: asked once per call

local function groups_used()
  if grouped_jobs == nil then grouped_jobs = redis.call('EXISTS', K.group) == 1 end
  return grouped_jobs
end

local function group_of(id)
  if not groups_used() then return nil end
  return redis.call('HGET', K.group, id) or nil
end

-- group: the job's group key, or nil for none (an earlier run's group goes).
local function set_group(id, group)
  if group then
    redis.call('HSET', K.group, id, group)
    grouped_jobs = true
  elseif groups_used() then
    redis.call('HDEL', K.group, id)
  end
end

-- A lane entry: the score is padded so that lexical order is queue order within a group.
local function lane_member(group, score, id)
  return group .. '\0' .. string.format('%016.0f', score) .. '\0' .. id
end

-- The first n entries of group's lane.
local function lane_head(group, n)
  return redis.call('ZRANGEBYLEX', K.lanes, '[' .. group .. '\0', '(' .. group .. '\1',
    'LIMIT', 0, n)
end

local function next_turn()
  return redis.call('HINCRBY', K.flow, 'turn', 1)
end

-- A job of group was queued: the group is known, and takes a turn at the back of the ring
-- unless it has one already or is parked.
local function lane_joined(group)
  redis.call('ZADD', K.groups, 'NX', 0, group)
  if redis.call('ZSCORE', K.ring, group) or redis.call('ZSCORE', K.parked, group) then return end
  redis.call('ZADD', K.ring, next_turn(), group)
end

-- group lost a queued job or a run: once its lane is empty it leaves the ring (or parked),
-- and once it has no runs either it is forgotten, with its bucket when that is full again.
local function group_settle(group, now)
  if #lane_head(group, 1) > 0 then return end
  now = now or now_ms()
  redis.call('ZREM', K.ring, group)
  redis.call('ZREM', K.parked, group)
  local busy = tonumber(redis.call('ZSCORE', K.groups, group))
  if busy and busy > 0 then return end
  redis.call('ZREM', K.groups, group)
  local tat = tonumber(redis.call('HGET', K.flow, 'tat:' .. group))
  if tat and tat <= now then redis.call('HDEL', K.flow, 'tat:' .. group) end
end

-- The limits a caller passed (limits.flow_spec): nil for none.
local function read_flow(spec)
  if spec == nil or spec == '' then return nil end
  local t, b, cap, gt, gb = string.match(spec, '^([^,]*),([^,]*),([^,]*),([^,]*),([^,]*)$')
  return {
    interval = tonumber(t), burst = tonumber(b), cap = tonumber(cap),
    group_interval = tonumber(gt), group_burst = tonumber(gb),
  }
end

-- A token bucket as GCRA keeps it: field of flow holds its tat, the time at which it is full
-- again. Returns how many runs may start now, and the tat to spend from.
local function bucket(field, interval, burst, now)
  local tat = tonumber(redis.call('HGET', K.flow, field)) or now
  if tat < now then tat = now end
  return math.max(0, math.floor(burst - (tat - now) / interval + 1e-6)), tat
end

-- Spend n starts of a bucket; returns when the next one may start (ms).
local function spend(field, tat, n, interval, burst)
  tat = tat + n * interval
  if n > 0 then redis.call('HSET', K.flow, field, string.format('%.4f', tat)) end
  return tat - (burst - 1) * interval
end

-- Whether one more run of group may start now (a hand-off: claim_flow checks its own way):
-- its queue's bucket has a token, the group has room under its cap and its own bucket a token.
-- Spends the tokens when it may.
local function may_start(flow, group, now)
  if not flow then return true end
  local free, tat, group_free, group_tat
  if flow.interval then
    free, tat = bucket('tat', flow.interval, flow.burst, now)
    if free < 1 then return false end
  end
  if group and flow.cap and (tonumber(redis.call('ZSCORE', K.groups, group)) or 0) >= flow.cap then
    return false
  end
  if group and flow.group_interval then
    group_free, group_tat = bucket('tat:' .. group, flow.group_interval, flow.group_burst, now)
    if group_free < 1 then return false end
    spend('tat:' .. group, group_tat, 1, flow.group_interval, flow.group_burst)
  end
  if tat then spend('tat', tat, 1, flow.interval, flow.burst) end
  return true
end


-- Runs of group ended, busy its runs now: a group parked at its cap takes a turn again (and an
-- idle worker is woken for it); one with nothing queued or running is forgotten. in_ring: it is
-- in the ring, so not parked (a group is in one or the other) and with queued jobs: nothing to
-- do, the usual case with many groups.
local function group_runs_ended(group, busy, in_ring, now)
  if in_ring then return end
  local parked = redis.call('ZSCORE', K.parked, group)
  if parked == 'inf' then
    redis.call('ZREM', K.parked, group)
    redis.call('ZADD', K.ring, next_turn(), group)
    wake_one()
  end
  -- Its lane did not change: a group parked has queued jobs, and stays.
  if busy <= 0 and not parked then group_settle(group, now) end
end

-- A run of id stopped: its group's slot comes back (group_runs_ended). Before the record goes
-- (release).
local function end_group_run(id, now)
  local group = group_of(id)
  if not group then return end
  local busy = tonumber(redis.call('ZINCRBY', K.groups, -1, group))
  group_runs_ended(group, busy, redis.call('ZSCORE', K.ring, group), now)
end

-- Runs of many jobs stopped (ack_runs): ended[group] runs of each group of groups. Their counts
-- are read and written once for all (ZMSCORE, ZADD), and the ring looked up once.
local function end_group_runs(groups, ended, now)
  if #groups == 0 then return end
  local busy, in_ring = read_all('ZMSCORE', K.groups, groups), read_all('ZMSCORE', K.ring, groups)
  local counts = {}
  for k, group in ipairs(groups) do
    busy[k] = (tonumber(busy[k]) or 0) - ended[group]
    counts[#counts + 1], counts[#counts + 2] = int(busy[k]), group
  end
  call_all('ZADD', K.groups, counts)
  for k, group in ipairs(groups) do group_runs_ended(group, busy[k], in_ring[k], now) end
end

-- seq: a sequence number the caller took already (add takes a block per call), else the next.
-- A job with a group goes to grouped and its lane instead of queued.
local function push_queued(id, priority, seq)
  seq = seq or redis.call('INCR', K.seq)
  local score = (100 - priority) * PRIORITY_STEP + seq
  local group = group_of(id)
  if not group then
    redis.call('ZADD', K.queued, int(score), id)
    return
  end
  redis.call('ZADD', K.grouped, int(score), id)
  redis.call('ZADD', K.lanes, 0, lane_member(group, score, id))
  lane_joined(group)
end

-- Take id out of the queued jobs (cancel, remove, purge, a debounce); whether it was queued.
local function unqueue(id, now)
  if redis.call('ZREM', K.queued, id) == 1 then return true end
  if not groups_used() then return false end
  local score = redis.call('ZSCORE', K.grouped, id)
  if not score then return false end
  redis.call('ZREM', K.grouped, id)
  local group = redis.call('HGET', K.group, id)
  if group then
    redis.call('ZREM', K.lanes, lane_member(group, tonumber(score), id))
    group_settle(group, now)
  end
  return true
end

-- The score of a queued id (in queued, or grouped), or nil.
-- Its reads check their keys' types (checked_read), as an add that plans reads them first.
local function queued_score(id)
  local score = checked_read('zset', 'ZSCORE', K.queued, id)
  if score or not groups_used() then return score or nil end
  return checked_read('zset', 'ZSCORE', K.grouped, id) or nil
end

-- How many jobs are queued, grouped or not (type-checked reads, as queued_score's).
local function queued_count()
  local n = checked_read('zset', 'ZCARD', K.queued)
  if groups_used() then n = n + checked_read('zset', 'ZCARD', K.grouped) end
  return n
end

-- A run record: token, started_ms, attempt (a number; 0 in a record of before attempts were
-- kept here), worker. Nothing for garbage.
local function parse_run(run)
  local token, started, attempt, worker = string.match(run, '^(%d+)|(%d+)|(%d+)|(.*)$')
  if token then return token, started, tonumber(attempt), worker end
  token, started, worker = string.match(run, '^(%d+)|(%d+)|(.*)$')
  return token, started, 0, worker
end

local function run_record(token, now, attempt, worker)
  return int(token) .. '|' .. int(now) .. '|' .. attempt .. '|' .. worker
end

local function write_run(id, token, now, attempt, worker)
  redis.call('HSET', K.run, id, run_record(token, now, attempt, worker))
end

-- The attempt of the run holding id with this token (0 if its record predates attempts kept
-- here), or nil when the token no longer holds the job.
local function held_run(id, token)
  if token == nil then return nil end
  local run = redis.call('HGET', K.run, id)
  if not run then return nil end
  local held, _, attempt = parse_run(run)
  if held ~= token or not redis.call('ZSCORE', K.processing, id) then return nil end
  return attempt
end

local function owns(id, token)
  return held_run(id, token) ~= nil
end

-- The attempt of the run holding id now (0 if none, or unknown).
local function live_attempt(id)
  local run = redis.call('HGET', K.run, id)
  if not run then return 0 end
  local _, _, attempt = parse_run(run)
  return attempt or 0
end

-- m with its attempts counting the live run of id, whose claim wrote it on the run only.
local function with_live_attempt(id, m)
  local attempt = live_attempt(id)
  if attempt > m.attempts then m.attempts = attempt end
  return m
end

-- A run that ends without releasing its job (a failure, a jam, a hand-back, an orphan): its
-- attempt goes into the job's record, for the next run to count on.
local function keep_attempt(id, attempt)
  local m = read_job(id)
  if attempt and attempt > m.attempts then
    m.attempts = attempt
    write_job(id, m)
  end
  return m
end

local function stop_run(id, now)
  redis.call('ZREM', K.processing, id)
  redis.call('HDEL', K.run, id)
  end_group_run(id, now)
end

-- Forget a job whose life ended: its id is free to be queued again.
local function release(id)
  redis.call('HDEL', K.jobs, id)
  redis.call('HDEL', K.errors, id)
  if groups_used() then redis.call('HDEL', K.group, id) end
end

-- A failed job queued again: its failed record and last error go.
local function clear_failure(id)
  redis.call('ZREM', K.failed, id)
  redis.call('HDEL', K.errors, id)
end

-- A new run of id: replaces any failed record and last error of an earlier run. unheld: the
-- caller saw id in no state, so by the schema it has neither.
-- The record head of a fresh run, built once per (now, priority): an add of 1,000 jobs would
-- otherwise format the same counters 1,000 times.
local fresh_head = {now = nil, priority = nil, text = nil}
local function start_fresh(id, body, priority, now, unheld)
  if not unheld then clear_failure(id) end
  if fresh_head.now ~= now or fresh_head.priority ~= priority then
    fresh_head.now, fresh_head.priority = now, priority
    fresh_head.text = counters_of({enqueued = now, attempts = 0, jams = 0, priority = priority})
  end
  redis.call('HSET', K.jobs, id, fresh_head.text .. '|' .. body)
end

-- Hand-off to a waiting worker. A worker whose claim found nothing, and which is about to block
-- on its queues' wake lists, may ask to be handed the next jobs, as many as the claim could
-- have taken (claim_jobs' idle_ms): an add that finds it claims its job for the worker, as a
-- claim would, and pushes the run to its inbox, which the worker blocks on too. The job then
-- starts after one round trip, the add's, instead of three (add, wake-up, claim). Each of the
-- worker's claims takes its request back and makes a new one, atomically, so the request stands
-- while the worker handles a handed run. It lapses at its deadline: a worker that died waiting
-- is handed at most its free slots' worth of jobs, which the jam guard recovers.
local IDLE_SLOTS = 1000 -- idle scores: deadline * IDLE_SLOTS + free slots (< IDLE_SLOTS)

-- The worker's inbox: the LIST of runs handed to it (django_convoy.keys.inbox_key).
local function inbox_of(worker)
  return string.sub(K.idle, 1, -5) .. 'inbox:' .. worker
end

-- The request of the worker that asked last (its caches are the warmest) and its score, if it
-- still stands, the queue is not paused and no job waits ahead; else nil. A request names the
-- worker's lease: a handed run gets the lease its worker renews at, not the adder's.
-- Reads only, so that an add can look before its first write (add.lua): what it finds to drop
-- from idle comes third, for drop_requests: a member that is not a request (written by hand?),
-- or true when the newest request lapsed, so every one did. It checks the type of the worker's
-- inbox, which a hand-over writes and no guard can name in advance.
local function find_waiting(now)
  local newest = checked_read('zset', 'ZREVRANGE', K.idle, 0, 0, 'WITHSCORES')
  if #newest == 0 then return nil end
  local score = tonumber(newest[2])
  local worker = string.match(newest[1], '^%d+|(.+)$')
  if not worker then return nil, nil, newest[1] end
  if math.floor(score / IDLE_SLOTS) < now then return nil, nil, true end
  if redis.call('EXISTS', K.paused) == 1 or queued_count() > 0 then
    return nil
  end
  refuse_wrong_type(inbox_of(worker), 'list')
  return newest[1], score
end

local function drop_requests(found)
  if found == true then
    redis.call('DEL', K.idle)
  elseif found then
    redis.call('ZREM', K.idle, found)
  end
end

-- find_waiting, dropping what it found to drop (task_add, tick: their guard came first).
local function waiting_worker(now)
  local request, score, drop = find_waiting(now)
  drop_requests(drop)
  return request, score
end

-- The idle member of a worker's request.
local function request_of(worker, lease)
  return int(lease) .. '|' .. worker
end

-- Ask for up to slots jobs until deadline (claim_jobs), sweeping the requests that lapsed.
local function wait_for_jobs(request, deadline, slots, now)
  redis.call('ZREMRANGEBYSCORE', K.idle, '-inf', '(' .. int(now * IDLE_SLOTS))
  redis.call('ZADD', K.idle, int(deadline * IDLE_SLOTS + math.min(slots, IDLE_SLOTS - 1)), request)
end

-- Record a fresh run of id (attempt 1, fencing token token) for the request waiting_worker
-- found, and push it to the worker's inbox as claim_jobs would return it; the request stands
-- for one job fewer. unheld: as start_fresh's. group: the job's (may_start let it start).
local function hand_over(id, body, priority, now, token, request, score, unheld, group)
  local lease, worker = string.match(request, '^(%d+)|(.*)$')
  lease = tonumber(lease)
  local inbox = inbox_of(worker) -- its type checked by find_waiting
  if not unheld then clear_failure(id) end
  if score % IDLE_SLOTS > 1 then
    redis.call('ZADD', K.idle, int(score - 1), request)
  else
    redis.call('ZREM', K.idle, request)
  end
  write_job(id, {enqueued = now, attempts = 0, jams = 0, priority = priority, body = body})
  write_run(id, token, now, 1, worker)
  redis.call('ZADD', K.processing, int(now + lease), id)
  if group then redis.call('ZINCRBY', K.groups, 1, group) end -- its run counts
  observe('wait', 0)
  -- The inbox lives no longer than its first run's lease, so no run in it outlives its own: a
  -- worker that pops one too late (stalled, or dead) never starts a run the jam guard took back.
  if redis.call('RPUSH', inbox, cjson.encode({id, body, 1, int(token)})) == 1 then
    redis.call('PEXPIRE', inbox, lease)
  end
end

-- Its reads check their keys' types (checked_read), as an add that plans reads them first.
local function state_of(id, now)
  if queued_score(id) then return 'queued' end
  local deadline = checked_read('zset', 'ZSCORE', K.processing, id)
  if deadline then
    if tonumber(deadline) < now then return 'jammed' end
    return 'processing'
  end
  if checked_read('zset', 'ZSCORE', K.scheduled, id) then return 'scheduled' end
  if checked_read('zset', 'ZSCORE', K.failed, id) then return 'failed' end
  return nil
end

-- By the schema an id without a record (the usual add) is in no state, which spares three of
-- state_of's four lookups; running twice at once must not follow even from a record deleted
-- by hand, so a processing entry is looked for all the same.
local function state_of_new(id, now)
  if checked_read('hash', 'HEXISTS', K.jobs, id) == 1 then return state_of(id, now) end
  local deadline = checked_read('zset', 'ZSCORE', K.processing, id)
  if deadline then return tonumber(deadline) < now and 'jammed' or 'processing' end
  return nil
end

-- hold_for: once the job of id ends (acked and released, or failed for good), adds of id are
-- refused for a while (a throttle). While the job is live its hold waits in held as -hold_ms;
-- its end turns that into the deadline. Returns the score of id in held, a number or nil.
local function hold_of(id, ctx)
  if ctx.holds == nil then ctx.holds = redis.call('EXISTS', K.held) == 1 end -- once per call
  if not ctx.holds then return nil end
  return tonumber(checked_read('zset', 'ZSCORE', K.held, id))
end

-- The job of id ended: start the hold its add asked for, if any (sweeping lapsed holds).
local function start_hold(id, now)
  local hold = tonumber(redis.call('ZSCORE', K.held, id))
  if not hold or hold >= 0 then return end
  redis.call('ZREMRANGEBYSCORE', K.held, 0, int(now))
  redis.call('ZADD', K.held, int(now - hold), id)
end

-- if_queued 'replace': an add of a waiting id replaces its body (its counters stay) and, with
-- a delay, restarts it (a debounce: a queued job becomes scheduled again). Returns as add_one.
local function replace_waiting(id, body, ctx, state)
  local m = read_job(id)
  m.body = body
  write_job(id, m)
  if ctx.hold_ms then redis.call('ZADD', K.held, -ctx.hold_ms, id) end
  if ctx.due > ctx.now then
    if state == 'queued' then unqueue(id, ctx.now) end
    redis.call('ZADD', K.scheduled, int(ctx.due), id)
    ctx.wake = true
    return 2, 'scheduled', 0
  end
  return 2, state, 0
end

-- What add_one must know of id, read without writing (add.lua reads every id's before its first
-- write): the state id is in now and, when it may be added, its hold (hold_of).
local function plan_one(id, ctx)
  local state = state_of_new(id, ctx.now)
  if state == nil or state == 'failed' then return state, hold_of(id, ctx) end
  return state, nil
end

-- The add state machine, the one every add runs (add.lua, task_add.lua, tick.lua): add id
-- unless it is live; state and hold: what plan_one read of it. ctx holds what the whole call shares: now, priority, due (ms, Redis clock; <= now:
-- queue it now), if_processing, keep_rerun, if_queued ('replace'; else keep), hold_ms (hold_for;
-- nil: none), and waiting / waiting_score, the request of a worker waiting to be handed a job
-- (waiting_worker), which the first job queued now takes if the limits let it start (flow:
-- read_flow's, nil: none); group: the jobs' group key (nil: none).
-- seq: this job's sequence number, also its fencing token if it is handed over.
-- A rerun asked for while one is pending: a plain job's newest body replaces the pending one's
-- (its payload is the latest word); with keep_rerun (a Django task's run, whose result id a
-- caller already holds) the pending run stands for every later request.
-- Returns: added (0 | 1; 2: a waiting job's body replaced, if_queued), the state id is in now
-- ('held': refused, hold_for), rerun (0: not asked or not processing; 1: this call made or
-- replaced the pending rerun; 2: an earlier pending rerun stands).
-- Sets ctx.wake when a worker should wake (a job queued, or a new earliest due time).
local function add_one(id, body, ctx, seq, state, hold)
  local now = ctx.now
  if state == nil or state == 'failed' then
    if hold and hold > now then return 0, 'held', 0 end
    if ctx.hold_ms then
      redis.call('ZADD', K.held, -ctx.hold_ms, id)
    elseif hold then -- a lapsed hold, or the pending one of a job deleted before it ended
      redis.call('ZREM', K.held, id)
    end
    if ctx.group or state ~= nil then set_group(id, ctx.group) end
    if ctx.waiting and ctx.due <= now and may_start(ctx.flow, ctx.group, now) then
      hand_over(id, body, ctx.priority, now, seq, ctx.waiting, ctx.waiting_score, state == nil,
        ctx.group)
      ctx.waiting = nil
      return 1, 'processing', 0
    end
    start_fresh(id, body, ctx.priority, now, state == nil)
    ctx.wake = true
    if ctx.due > now then
      redis.call('ZADD', K.scheduled, int(ctx.due), id)
      return 1, 'scheduled', 0
    end
    push_queued(id, ctx.priority, seq)
    return 1, 'queued', 0
  end
  if ctx.if_queued == 'replace' and (state == 'queued' or state == 'scheduled') then
    return replace_waiting(id, body, ctx, state)
  end
  if (state == 'processing' or state == 'jammed') and ctx.if_processing == 'rerun' then
    if ctx.keep_rerun and redis.call('HEXISTS', K.rerun, id) == 1 then
      return 0, state, 2
    end
    redis.call('HSET', K.rerun, id, ctx.priority .. '|' .. body)
    return 0, state, 1
  end
  return 0, state, 0
end

-- Count n outcomes (1 if not given) in the totals (write_counts writes them) and in the
-- per-minute throughput of the last hour.
local function tick(outcome, now, n)
  n = n or 1
  count_in(outcome, n)
  local minute = math.floor(now / 60000)
  if redis.call('HINCRBY', K.throughput, outcome .. ':' .. minute, n) == n
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

-- EXTRA_KEY is the day's error log in the scripts that call this.
local function log_error(error_json, keep, ttl_seconds)
  redis.call('LPUSH', EXTRA_KEY, error_json)
  redis.call('LTRIM', EXTRA_KEY, 0, keep - 1)
  redis.call('EXPIRE', EXTRA_KEY, ttl_seconds)
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
  start_hold(id, now)
  redis.call('ZADD', K.failed, int(now), id)
  trim_failed(now, failed_ttl_ms)
  return 'failed'
end

-- The groups' turns: take up to n jobs for a claim, one per turn, into taken (id, score pairs as
-- ZPOPMIN returns them). The ring's head (the group whose turn is oldest) gives its lane's first
-- job and goes to the back; the ungrouped jobs (queued) take turns as one more group. A group at
-- its cap is parked until one of its runs ends (group_runs_ended), one out of tokens until its
-- bucket has one (claims bring it back then). The ring is read a claim's worth of heads at a
-- time, and written once per pass: a claim of n jobs costs a few commands per job.
local function take_turns(n, flow, now, taken)
  local turn = tonumber(redis.call('HGET', K.flow, 'turn')) or 0
  local back = redis.call('ZRANGEBYSCORE', K.parked, '-inf', int(now))
  for _, group in ipairs(back) do
    turn = turn + 1
    redis.call('ZREM', K.parked, group)
    redis.call('ZADD', K.ring, turn, group)
  end
  local cap = flow and flow.cap
  local group_interval = flow and flow.group_interval
  local plain = redis.call('EXISTS', K.queued) == 1
  local plain_turn = plain and (tonumber(redis.call('HGET', K.flow, 'plain')) or 0)
  local plain_moved = false
  local function take_plain()
    local job, at = redis.call('ZPOPMIN', K.queued), #taken
    taken[at + 1], taken[at + 2] = job[1], job[2]
    turn = turn + 1
    plain_turn, plain_moved = turn, true
    plain = redis.call('EXISTS', K.queued) == 1
  end
  while #taken < 2 * n do
    -- The heads' turns matter only to interleave the ungrouped jobs' (plain): else unread.
    local names, turns
    if plain then
      turns = redis.call('ZRANGE', K.ring, 0, n - #taken / 2 - 1, 'WITHSCORES')
      names = {}
      for i = 1, #turns, 2 do names[#names + 1] = turns[i] end
    else
      names = redis.call('ZRANGE', K.ring, 0, n - #taken / 2 - 1)
    end
    if #names == 0 then
      if not plain then break end
      take_plain()
    else
      local again, gone, parked, ids, members, counts = {}, {}, {}, {}, {}, {}
      -- The heads' runs, read once for the pass (a head is in it once) and written once.
      local busy = read_all('ZMSCORE', K.groups, names)
      for k, group in ipairs(names) do
        if #taken >= 2 * n then break end
        local runs = tonumber(busy[k]) or 0
        if plain and plain_turn < tonumber(turns[2 * k]) then take_plain() end
        if #taken >= 2 * n then break end
        local free, tat = 1, nil
        if cap and runs >= cap then
          free = 0
          parked[#parked + 1] = '+inf'
          parked[#parked + 1] = group
        elseif group_interval then
          free, tat = bucket('tat:' .. group, group_interval, flow.group_burst, now)
          if free < 1 then
            local at = math.ceil(tat - (flow.group_burst - 1) * group_interval)
            parked[#parked + 1] = int(at)
            parked[#parked + 1] = group
          end
        end
        local lane = free > 0 and lane_head(group, 2) or {}
        if free < 1 or #lane == 0 then -- parked, or (by the schema, never) a lane emptied
          gone[#gone + 1] = group
        else
          local id = string.sub(lane[1], #group + 19)
          members[#members + 1], ids[#ids + 1] = lane[1], id
          counts[#counts + 1], counts[#counts + 2] = int(runs + 1), group
          if tat then spend('tat:' .. group, tat, 1, group_interval, flow.group_burst) end
          if #lane > 1 then
            turn = turn + 1
            again[#again + 1] = turn
            again[#again + 1] = group
          else
            gone[#gone + 1] = group
          end
          local at = #taken
          taken[at + 1], taken[at + 2] = id, string.sub(lane[1], #group + 2, #group + 17)
        end
      end
      call_all('ZADD', K.groups, counts)
      if #members > 0 then
        redis.call('ZREM', K.lanes, unpack(members))
        redis.call('ZREM', K.grouped, unpack(ids))
      end
      if #gone > 0 then redis.call('ZREM', K.ring, unpack(gone)) end
      if #parked > 0 then redis.call('ZADD', K.parked, unpack(parked)) end
      if #again > 0 then redis.call('ZADD', K.ring, unpack(again)) end
    end
  end
  redis.call('HSET', K.flow, 'turn', turn)
  if plain_moved then redis.call('HSET', K.flow, 'plain', plain_turn) end
end

-- The queued jobs a claim of up to n may start under the limits (flow: read_flow's, or nil
-- while groups are in use), as ZPOPMIN returns them; and when the next may start if RATE_LIMIT
-- held some back (nil if it did not).
local function claim_flow(n, flow, now)
  local tat
  if flow and flow.interval then
    local free
    free, tat = bucket('tat', flow.interval, flow.burst, now)
    if free < n then n = free end
  end
  local taken = {}
  if n > 0 and groups_used() then
    take_turns(n, flow, now, taken)
  elseif n > 0 then
    taken = redis.call('ZPOPMIN', K.queued, n)
  end
  if not tat then return taken, nil end
  local next_at = spend('tat', tat, #taken / 2, flow.interval, flow.burst)
  if next_at <= now or #taken / 2 < n then return taken, nil end -- not held back
  if redis.call('EXISTS', K.queued) == 0 and redis.call('EXISTS', K.ring) == 0 then
    return taken, nil -- nothing claimable left: not held back either
  end
  next_at = math.ceil(next_at)
  redis.call('HSET', K.flow, 'held', int(next_at))
  return taken, next_at
end

-- Promote due scheduled jobs, then hand up to max_jobs queued jobs to worker (claim.lua,
-- ack_claim.lua), after the runs handed to it while it waited (which count in max_jobs, but
-- come even when max_jobs is 0: they are its already). idle_ms > 0: if the queue runs dry
-- before max_jobs are taken, the worker asks to be handed as many more for that long.
-- flow_spec: the queue's limits (limits.flow_spec; '': none). Without limits and groups the
-- claim pops the queue as it always did; otherwise claim_flow takes what the limits allow.
-- A claim held back by a limit says when the next run may start in its next due time.
-- Returns: now_ms, next_due_ms (-1: none scheduled), paused (0 | 1), the sequence counter and
-- the queue's birth time (the counter only grows and the birth never changes, unless Redis
-- lost data), waiting (1: the request to be handed a job stands), then per run: id, body,
-- attempt, token, jams (after MAX_JAMS jams, its last chance runs in quarantine: see the worker's
-- executors).
-- now: Redis's time, if the caller read it already (ack_claim reads it once for both steps).
local function claim_jobs(max_jobs, worker, lease, promote_limit, idle_ms, flow_spec, now)
  now = now or now_ms()
  local inbox = inbox_of(worker)
  local handed = redis.pcall('LRANGE', inbox, 0, -1)
  if handed.err then error('convoy: ' .. inbox .. ' is not a list') end
  redis.call('ZREM', K.idle, request_of(worker, lease))
  if #handed > 0 then redis.call('DEL', inbox) end
  local due = redis.call('ZRANGEBYSCORE', K.scheduled, '-inf', int(now), 'WITHSCORES', 'LIMIT',
    0, promote_limit)
  for i = 1, #due, 2 do
    redis.call('ZREM', K.scheduled, due[i])
    push_queued(due[i], became_due(due[i], tonumber(due[i + 1])))
  end
  local first = redis.call('ZRANGE', K.scheduled, 0, 0, 'WITHSCORES')
  local out = {int(now), first[2] or '-1', 0, 0, '', 0}

  -- A handed run taken back meanwhile (by the jam guard, say) is not the worker's any more; one
  -- still held gets a lease from now, as a claimed run does.
  for _, message in ipairs(handed) do
    local run = cjson.decode(message)
    if owns(run[1], run[4]) then
      redis.call('ZADD', K.processing, int(now + lease), run[1])
      for _, part in ipairs(run) do out[#out + 1] = part end
      out[#out + 1] = 0 -- a handed run is a fresh one: never jammed
    end
  end
  max_jobs = max_jobs - (#out - 6) / 5
  local popped, held = {}, nil
  local flow = read_flow(flow_spec)
  local limited = flow or groups_used()
  if redis.call('EXISTS', K.paused) == 1 then
    out[3] = 1
  elseif max_jobs > 0 and limited then
    popped, held = claim_flow(max_jobs, flow, now)
    -- The worker waits until the next run may start: RATE_LIMIT's, or a parked group's.
    local parked = redis.call('ZRANGEBYSCORE', K.parked, '-inf', '(+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    for _, at in ipairs({held or false, tonumber(parked[2]) or false}) do
      if at and (out[2] == '-1' or at < tonumber(out[2])) then out[2] = int(at) end
    end
  elseif max_jobs > 0 then
    popped = redis.call('ZPOPMIN', K.queued, max_jobs)
  end
  -- The runs' fencing tokens: one block of the sequence for the whole claim.
  local seq = #popped > 0 and redis.call('INCRBY', K.seq, #popped / 2)
  local token = seq and seq - #popped / 2
  -- Their records read in one HMGET, their runs and deadlines written in one HSET and one ZADD.
  local ids, records, deadlines = {}, {}, {}
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  local raws = read_all('HMGET', K.jobs, ids)
  for k, id in ipairs(ids) do
    local m = parse_job(raws[k] or '')
    if m.attempts == 0 then observe('wait', now - m.enqueued) end -- a job's first run
    token = token + 1
    local record = run_record(token, now, m.attempts + 1, worker)
    records[#records + 1], records[#records + 2] = id, record
    deadlines[#deadlines + 1], deadlines[#deadlines + 2] = int(now + lease), id
    out[#out + 1] = id
    out[#out + 1] = m.body
    out[#out + 1] = m.attempts + 1
    out[#out + 1] = token
    out[#out + 1] = m.jams
  end
  call_all('HSET', K.run, records)
  call_all('ZADD', K.processing, deadlines)
  -- Pass the baton: if work is left, make sure another idle worker wakes for it (not when a
  -- limit holds it back: the workers wait for the time this reply gives).
  if (#popped > 0 or #due > 0) and out[3] == 0 and not held and (
      redis.call('EXISTS', K.queued) == 1 or limited and redis.call('EXISTS', K.ring) == 1) then
    wake_one()
  end
  -- Room left once the queue ran dry: the worker will wait, and asks to be handed jobs for it.
  local room = max_jobs - #popped / 2
  if idle_ms > 0 and room > 0 and out[3] == 0 and not (limited and queued_count() > 0) then
    wait_for_jobs(request_of(worker, lease), now + idle_ms, room, now)
    out[6] = 1
  end
  out[4] = seq and int(seq) or redis.call('GET', K.seq) or '0' -- nothing INCRs it after the pop
  out[5] = redis.call('HGET', K.stats, 'born') or ''
  return out
end

-- End runs that succeeded, releasing their ids (or queueing a requested rerun): the (id, token)
-- pairs of ARGV from index first on (ack.lua, ack_claim.lua). Returns per run: 1 released,
-- 2 rerun queued, 0 refused (the token no longer holds the job).
-- now: as claim_jobs'.
-- Per run it reads and checks; what it deletes (the run records, the records of the jobs it
-- releases, and their groups and last errors) goes in one HDEL per hash at the end, and the
-- groups of the jobs are read in one HMGET first: a few commands per call, not per run.
local function ack_runs(first, now)
  now = now or now_ms()
  local out = {}
  local processed = 0
  local ids = {}
  for i = first, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
  local runs = read_all('HMGET', K.run, ids)
  local groups = groups_used() and read_all('HMGET', K.group, ids) or {}
  local stopped, released = {}, {}
  local ended_groups, ended = {}, {} -- the groups of the runs that ended, and how many of each
  -- Reruns pending and holds (hold_for) are usually none: one EXISTS for both, which skips a
  -- lookup per run of each; a second only when one of them is there.
  local reruns, holds = false, false
  local either = redis.call('EXISTS', K.rerun, K.held)
  if either == 2 then
    reruns, holds = true, true
  elseif either == 1 then
    reruns = redis.call('EXISTS', K.rerun) == 1
    holds = not reruns
  end
  local errors = redis.call('EXISTS', K.errors) == 1 -- likewise: an error per run, if any
  local refused = 0
  for i = first, #ARGV, 2 do
    local id, token, k = ARGV[i], ARGV[i + 1], (i - first) / 2 + 1
    local run = runs[k]
    local held, started = parse_run(run or '')
    -- The ZREM is the check that the job is processing (by the schema it is, while run has
    -- it) and the first step of stopping the run, in one command.
    if run and held == token and redis.call('ZREM', K.processing, id) == 1 then
      stopped[#stopped + 1] = id
      local group = groups[k]
      if group then
        if not ended[group] then ended_groups[#ended_groups + 1], ended[group] = group, 0 end
        ended[group] = ended[group] + 1
      end
      processed = processed + 1
      observe('duration', now - (tonumber(started) or now))
      if reruns and queue_pending_rerun(id, now) then
        out[#out + 1] = 2
      else
        released[#released + 1] = id
        if holds then start_hold(id, now) end
        out[#out + 1] = 1
      end
    else
      out[#out + 1] = 0
      refused = refused + 1
    end
  end
  end_group_runs(ended_groups, ended, now)
  call_all('HDEL', K.run, stopped)
  call_all('HDEL', K.jobs, released)
  if errors then call_all('HDEL', K.errors, released) end
  if grouped_jobs then call_all('HDEL', K.group, released) end
  if processed > 0 then tick('processed', now, processed) end
  count_in('stale', refused)
  return out
end

-- Django Tasks runs (task_*.lua): the result id a body carries, or ''. pcall: a body added by
-- other code may not be JSON at all.
local function result_of(body)
  local ok, data = pcall(cjson.decode, body or '')
  if ok and type(data) == 'table' and type(data.payload) == 'table'
      and type(data.payload.result) == 'string' then
    return data.payload.result
  end
  return ''
end

-- A Django task's run was added (task_add.lua, tick.lua): create its READY result, the HASH
-- EXTRA_KEY, kept keep_ms (the run's wait included) unless a later write extends it.
local function create_task_result(id, body, now, keep_ms)
  redis.call('HSET', EXTRA_KEY, 'job', id, 'body', body, 'enqueued', int(now), 'status', 'READY')
  redis.call('PEXPIRE', EXTRA_KEY, int(keep_ms))
end
