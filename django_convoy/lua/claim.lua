-- claim: promote due scheduled jobs, then hand up to max_jobs queued jobs to one worker.
-- ARGV: max_jobs, worker_id, lease_ms, promote_limit
-- Returns: now_ms, next_due_ms (-1: none scheduled), paused (0 | 1), the sequence counter
--   and the queue's birth time (the counter only grows and the birth never changes, unless
--   Redis lost data), then per claimed job: id, body, attempt, token
local max_jobs, worker, lease = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local now = now_ms()

local due = redis.call('ZRANGEBYSCORE', K.scheduled, '-inf', int(now), 'LIMIT', 0, tonumber(ARGV[4]))
for _, id in ipairs(due) do
  redis.call('ZREM', K.scheduled, id)
  push_queued(id, read_meta(id).priority)
end
local first = redis.call('ZRANGE', K.scheduled, 0, 0, 'WITHSCORES')
local out = {int(now), first[2] or '-1', 0, 0, ''}

if redis.call('EXISTS', K.paused) == 1 then
  out[3] = 1
  out[4] = redis.call('GET', K.seq) or '0'
  out[5] = redis.call('HGET', K.stats, 'born') or ''
  return out
end

local popped = {}
if max_jobs > 0 then
  popped = redis.call('ZPOPMIN', K.queued, max_jobs)
end
for i = 1, #popped, 2 do
  local id = popped[i]
  local m = read_meta(id)
  m.attempts = m.attempts + 1
  write_meta(id, m)
  local token = redis.call('INCR', K.seq)
  redis.call('HSET', K.run, id, token .. '|' .. int(now) .. '|' .. worker)
  redis.call('ZADD', K.processing, int(now + lease), id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', K.body, id) or ''
  out[#out + 1] = m.attempts
  out[#out + 1] = token
end
-- Pass the baton: if work is left, make sure another idle worker wakes for it.
if (#popped > 0 or #due > 0) and redis.call('ZCARD', K.queued) > 0 then
  wake_one()
end
out[4] = redis.call('GET', K.seq) or '0'
out[5] = redis.call('HGET', K.stats, 'born') or ''
return out
