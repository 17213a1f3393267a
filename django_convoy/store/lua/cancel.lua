-- cancel: stop a job wherever it is. A waiting (queued or scheduled) job is removed and its id
-- released. A processing or jammed one has its run stopped in this same step, so its fence is
-- revoked (its later ack, fail, renew or result write is refused), and is kept in failed for
-- FAILED_TTL as cancelled, with who cancelled it. A pending rerun is dropped too.
-- KEYS: the queue's, with EXTRA_KEY the result HASH of the Django task run the caller expects
--   the job to carry (in the error log's place), when it expects one
-- ARGV: id, who ('' when not known), failed_ttl_ms, result id ('' when none is expected)
-- Returns: {state it was in} ('' when there was nothing to cancel: no job, or a failed one),
--   or {'result', result id}, changing nothing, when the job carries a Django task's result
--   other than the one expected: call again with that result's HASH.
refuse_corrupt_keys('hash')
local id, who, failed_ttl, rid = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now = now_ms()
local state = state_of(id, now)
if state == nil or state == 'failed' then return {''} end
local m = with_live_attempt(id, read_job(id))
local carried = result_of(m.body)
if carried ~= rid then return {'result', carried} end

local waiting = state == 'queued' or state == 'scheduled'
local attempt = waiting and m.attempts + 1 or m.attempts -- a waiting job's next, never run
local by = who ~= '' and (' by ' .. who) or ''
local error_json = cjson.encode({
  type = 'django_convoy.exceptions.JobCancelled',
  message = 'cancelled' .. by .. ' while ' .. state,
  traceback = '', at = now, attempt = attempt, id = id, reason = 'cancelled',
  cancelled_by = who, cancelled_while = state,
})
if rid ~= '' then
  redis.call('HSETNX', EXTRA_KEY, 'error:' .. attempt, error_json)
  redis.call('HSET', EXTRA_KEY, 'status', 'FAILED', 'attempt', attempt, 'finished', int(now))
end
redis.call('HDEL', K.rerun, id)
if waiting then
  if state == 'queued' then unqueue(id, now) else redis.call('ZREM', K.scheduled, id) end
  release(id)
  return {state}
end
stop_run(id, now)
keep_attempt(id, attempt)
redis.call('HSET', K.errors, id, error_json)
redis.call('ZADD', K.failed, int(now), id)
trim_failed(now, failed_ttl)
return {state}
