-- task_result: read a Django task's result, with where its run is now.
-- KEYS: the queue's, with EXTRA_KEY the result HASH (in the error log's place)
-- ARGV: result_id
-- Returns {} if no such result; else now_ms, state, score, attempts, last error, then the
--   result HASH as field, value pairs. state is the job's ('queued', 'processing', ...) while
--   the job's live run is this result's, 'rerun' while it waits as the job's pending rerun,
--   else ''; score is that state's ZSET score, attempts and last error are the job's.
local rid = ARGV[1]
local result = EXTRA_KEY
local fields = redis.call('HGETALL', result)
if #fields == 0 then return {} end
local now = now_ms()

local out = {int(now), '', '', 0, ''}
local id = redis.call('HGET', result, 'job')
local state = id and state_of(id, now)
local job = state and with_live_attempt(id, read_job(id))
if job and result_of(job.body) == rid then
  local set = state == 'jammed' and 'processing' or state
  out[2] = state
  out[3] = redis.call('ZSCORE', K[set], id) or ''
  out[4] = job.attempts
  out[5] = redis.call('HGET', K.errors, id) or ''
elseif state == 'processing' or state == 'jammed' then
  local pending = redis.call('HGET', K.rerun, id)
  if pending and result_of(string.match(pending, '^-?%d+|(.*)$')) == rid then
    out[2] = 'rerun'
  end
end
for _, item in ipairs(fields) do
  out[#out + 1] = item
end
return out
