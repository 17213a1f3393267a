-- fail: end a run whose code raised or timed out; retry it later or record the failure.
-- ARGV: id, token, error_json, retry_delay_ms (-1: final), failed_ttl_ms, errorlog_keep,
--   errorlog_ttl_seconds
-- Returns 'retry', 'failed', 'rerun' (final, and a requested rerun was queued) or 'stale'.
-- The error kept gets "ran_ms": how long the run took, by Redis's clock (the admin shows it).
refuse_corrupt_keys('list')
local id, token, error_json = ARGV[1], ARGV[2], ARGV[3]
local retry_delay = tonumber(ARGV[4])
local attempt = held_run(id, token)
if attempt == nil then
  count_in('stale', 1)
  write_counts()
  return 'stale'
end
local now = now_ms()
local started = tonumber(string.match(redis.call('HGET', K.run, id), '^%d+|(%d+)|'))
if started and string.match(error_json, '^{.*[^{%s]%s*}$') then
  error_json = string.sub(error_json, 1, -2) .. ',"ran_ms":' .. int(now - started) .. '}'
end
stop_run(id, now)
observe('duration', now - (started or now))
keep_attempt(id, attempt)
redis.call('HSET', K.errors, id, error_json)
log_error(error_json, tonumber(ARGV[6]), tonumber(ARGV[7]))
if retry_delay >= 0 then
  redis.call('ZADD', K.scheduled, int(now + retry_delay), id)
  wake_one()
  count_in('retried', 1)
  write_counts()
  return 'retry'
end
local verdict = finish_failed(id, now, tonumber(ARGV[5]))
write_counts()
return verdict
