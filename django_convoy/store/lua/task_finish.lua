-- task_finish: record how an attempt of a Django task ended; only the run holding the job may.
-- KEYS: the queue's, with EXTRA_KEY the run's result HASH (in the error log's place)
-- ARGV: id, token, status ('SUCCESSFUL' | 'FAILED' | 'READY': failed, to be retried),
--   value (the return value's JSON, else the error's), ttl_ms
-- Returns: now_ms, or 0 when the token no longer holds the job (a late worker: refused).
local id, token, status, value, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local result = EXTRA_KEY
local attempt = held_run(id, token)
if attempt == nil then return 0 end
local now = now_ms()
attempt = math.max(attempt, read_job(id).attempts)
redis.call('HSET', result, 'status', status, 'attempt', attempt)
if status == 'SUCCESSFUL' then
  redis.call('HSET', result, 'return', value, 'finished', int(now))
else
  redis.call('HSET', result, 'error:' .. attempt, value)
  if status == 'FAILED' then redis.call('HSET', result, 'finished', int(now)) end
end
redis.call('PEXPIRE', result, int(ttl))
return int(now)
