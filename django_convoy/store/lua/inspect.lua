-- inspect: a consistent snapshot of one job, and the result its id's last run kept.
-- KEYS: the queue's, with EXTRA_KEY the job's result STRING (keep_result.lua), then its
--   progress STRING (progress.lua)
-- ARGV: id
-- Returns: now_ms, state ('done': no job, but a kept result; '': neither), score of its state
--   ('' if none), body, "enqueued_ms|attempts|jams|priority", run, last error, pending rerun
--   flag (0 | 1), the kept result ('' if none), the progress last reported ('' if none)
local id = ARGV[1]
local now = now_ms()
local result = redis.pcall('GET', EXTRA_KEY) -- a mangled key reads as no result
if type(result) ~= 'string' then result = '' end
local state = state_of(id, now)
if not state then
  if result == '' then return {int(now), ''} end
  return {int(now), 'done', '', '', '', '', '', 0, result}
end
local progress = KEYS[QUEUE_KEYS + 2] and redis.pcall('GET', KEYS[QUEUE_KEYS + 2])
if type(progress) ~= 'string' then progress = '' end
local set = state == 'jammed' and 'processing' or state
local job = with_live_attempt(id, read_job(id))
local score = state == 'queued' and queued_score(id) or redis.call('ZSCORE', K[set], id)
return {
  int(now), state, score or '', job.body, counters_of(job),
  redis.call('HGET', K.run, id) or '', redis.call('HGET', K.errors, id) or '',
  redis.call('HEXISTS', K.rerun, id), result, progress,
}
