-- task_add: queue one run of a Django task (django_convoy.backends) and create its result, unless
-- its job id already stands for a live run.
-- KEYS: the queue's, with EXTRA_KEY the HASH of the new run's result (django_convoy.keys.task_result_key,
--   in the error log's place: no task_* script records failures in the error log)
-- ARGV: id, body (its payload carries the result id), if_processing ('ignore' | 'rerun'),
--   due_ms (Redis-clock ms; <= now: queue it now), priority, keep_ms (how long a result HASH
--   outlives its last write while its run is waiting)
-- Returns: now_ms, outcome, result id. outcome 'added' (queued or scheduled now), 'rerun' (to
--   run once the live run ends) or 'exists': then the result id is the live run's (the pending
--   rerun's, if there is one), or '' when that run was not enqueued through Django's Tasks
--   framework.
refuse_corrupt_keys('hash')
local id, body, if_processing = ARGV[1], ARGV[2], ARGV[3]
local due, priority, keep = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local result = EXTRA_KEY
local now = now_ms()

local function create_result(waits_ms)
  redis.call('HSET', result, 'job', id, 'body', body, 'enqueued', int(now), 'status', 'READY')
  redis.call('PEXPIRE', result, int(keep + math.max(0, waits_ms)))
end

local state = state_of(id, now)
local waiting, waiting_score = nil, nil
if (state == nil or state == 'failed') and due <= now then
  waiting, waiting_score = waiting_worker(now)
end
if waiting then
  local token = redis.call('INCR', K.seq)
  hand_over(id, body, priority, now, token, waiting, waiting_score, state == nil)
  redis.call('HSETNX', K.stats, 'born', int(now))
  create_result(0)
  return {int(now), 'added', result_of(body)}
end
if state == nil or state == 'failed' then
  start_fresh(id, body, priority, now)
  if due > now then
    redis.call('ZADD', K.scheduled, int(due), id)
    state = 'scheduled'
  else
    push_queued(id, priority)
    state = 'queued'
  end
  wake_one()
  redis.call('HSETNX', K.stats, 'born', int(now)) -- as add.lua does: the queue's birth mark
  create_result(due - now)
  return {int(now), 'added', result_of(body)}
end
if (state == 'processing' or state == 'jammed') and if_processing == 'rerun' then
  local pending = redis.call('HGET', K.rerun, id)
  if pending then
    -- One rerun is pending at a time, and it stands for every request made meanwhile.
    return {int(now), 'exists', result_of(string.match(pending, '^-?%d+|(.*)$'))}
  end
  redis.call('HSET', K.rerun, id, priority .. '|' .. body)
  create_result(0)
  return {int(now), 'rerun', result_of(body)}
end
return {int(now), 'exists', result_of(read_job(id).body)}
