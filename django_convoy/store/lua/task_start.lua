-- task_start: a worker starts running a Django task: mark its result RUNNING for this attempt.
-- KEYS: the queue's, with EXTRA_KEY the run's result HASH (in the error log's place)
-- ARGV: id, token, worker_id, keep_ms
-- Returns {} when the token no longer holds the job (nothing written); else now_ms, the
--   attempt, then the result HASH as field, value pairs.
-- Result fields: job, body, enqueued, status, attempt (of the last write), started (first
-- attempt), last_attempted, finished, return (JSON), worker:<attempt>, error:<attempt> (JSON).
local id, token, worker, keep = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local result = EXTRA_KEY
local attempt = held_run(id, token)
if attempt == nil then return {} end
local now = now_ms()
local m = read_job(id)
if attempt > m.attempts then m.attempts = attempt end
if redis.call('EXISTS', result) == 0 then
  -- It expired while the job waited longer than keep_ms: the job still has all it needs.
  redis.call('HSET', result, 'job', id, 'body', m.body,
    'enqueued', int(m.enqueued))
end
-- An attempt that ended without the task's own report (it timed out) left its error with the
-- queue only; keep it with the result before this attempt's error could replace it.
local last_error = redis.call('HGET', K.errors, id)
if last_error then
  local ok, data = pcall(cjson.decode, last_error)
  if ok and type(data) == 'table' and tonumber(data.attempt) then
    redis.call('HSETNX', result, 'error:' .. int(tonumber(data.attempt)), last_error)
  end
end
redis.call('HSETNX', result, 'started', int(now))
redis.call('HSET', result, 'status', 'RUNNING', 'attempt', m.attempts,
  'last_attempted', int(now), 'worker:' .. m.attempts, worker)
redis.call('HDEL', result, 'finished', 'return')
redis.call('PEXPIRE', result, int(keep))
local out = {int(now), m.attempts}
for _, item in ipairs(redis.call('HGETALL', result)) do
  out[#out + 1] = item
end
return out
