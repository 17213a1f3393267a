-- progress: record how far a run got; only the run holding the job may (fenced like a result).
-- KEYS: the queue's, with EXTRA_KEY the job's progress STRING (in the error log's place)
-- ARGV: id, token, done, total ('' when unknown), message, ttl_ms
-- Returns 1 written, 0 refused (the token no longer holds the job: a late run writes nothing).
-- The progress: "first_ms|first_done|updated_ms|done|total|" .. message (records.Progress reads
-- it); first_*: the run's first report, kept for the rate while the same run reports. Readers
-- take it for the live run's only if first_ms is not before the run started.
local id, token, done, total = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local started = nil
local run = redis.call('HGET', K.run, id)
if run then
  local held, since = parse_run(run)
  if held == token and redis.call('ZSCORE', K.processing, id) then started = tonumber(since) end
end
if not started then return 0 end
local now = now_ms()
local first_ms, first_done = now, done
local old = redis.pcall('GET', EXTRA_KEY)
if type(old) == 'string' then
  local fm, fd = string.match(old, '^(%d+)|([^|]*)|')
  if fm and tonumber(fm) >= started then first_ms, first_done = tonumber(fm), fd end
end
local text = int(first_ms) .. '|' .. first_done .. '|' .. int(now) .. '|' .. done .. '|' ..
  total .. '|' .. ARGV[5]
redis.call('SET', EXTRA_KEY, text, 'PX', ARGV[6])
return 1
