-- stats: the counts of one queue, split at the Redis clock's now, and what the metrics read.
-- ARGV: none
-- Returns: now_ms, queued, processing, jammed, scheduled, failed, processed_total,
--   failed_total, paused (0 | 1), the enqueued time (ms) of the oldest job at the head of its
--   priority ('': none queued), then the stats HASH as field, value pairs (totals, counters,
--   histogram buckets: see count_in and observe in the prelude)
local now = int(now_ms())
local totals = redis.call('HMGET', K.stats, 'processed', 'failed')

-- Within a priority the queue is FIFO, so the head of each priority is its longest waiting
-- job; priorities in use are few, and each costs one lookup and one record read.
local oldest = ''
local head = redis.call('ZRANGE', K.queued, 0, 0, 'WITHSCORES')
for _ = 1, 201 do -- priorities -100..100
  if #head == 0 then break end
  local enqueued = tonumber(string.match(redis.call('HGET', K.jobs, head[1]) or '', '^(%d+)|'))
  if enqueued and (oldest == '' or enqueued < oldest) then oldest = enqueued end
  local next_priority = (math.floor(tonumber(head[2]) / PRIORITY_STEP) + 1) * PRIORITY_STEP
  head = redis.call('ZRANGEBYSCORE', K.queued, int(next_priority), '+inf', 'WITHSCORES',
    'LIMIT', 0, 1)
end

return {
  now, redis.call('ZCARD', K.queued),
  redis.call('ZCOUNT', K.processing, now, '+inf'),
  redis.call('ZCOUNT', K.processing, '-inf', '(' .. now),
  redis.call('ZCARD', K.scheduled), redis.call('ZCARD', K.failed),
  tonumber(totals[1]) or 0, tonumber(totals[2]) or 0,
  redis.call('EXISTS', K.paused), oldest == '' and '' or int(oldest),
  redis.call('HGETALL', K.stats),
}
