-- inspect: a consistent snapshot of one job.
-- ARGV: id
-- Returns: now_ms, state (or ''), score of its state ('' if none), body,
--   "enqueued_ms|attempts|jams|priority", run, last error, pending rerun flag (0 | 1)
local id = ARGV[1]
local now = now_ms()
local state = state_of(id, now)
if not state then return {int(now), ''} end
local set = state == 'jammed' and 'processing' or state
local job = with_live_attempt(id, read_job(id))
return {
  int(now), state, redis.call('ZSCORE', K[set], id) or '', job.body, counters_of(job),
  redis.call('HGET', K.run, id) or '', redis.call('HGET', K.errors, id) or '',
  redis.call('HEXISTS', K.rerun, id),
}
