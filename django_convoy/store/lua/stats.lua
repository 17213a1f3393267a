-- stats: the counts of one queue, split at the Redis clock's now, and what the metrics read.
-- ARGV: none
-- Returns: now_ms, queued, processing, jammed, scheduled, failed, processed_total,
--   failed_total, paused (0 | 1), the enqueued time (ms) of the oldest job at the head of its
--   priority ('': none queued), then the stats HASH as field, value pairs (totals, counters,
--   histogram buckets: see count_in and observe in the prelude), then flow control's: until
--   when RATE_LIMIT holds claims back (ms; 0: it does not now), how many groups have queued or
--   processing jobs, and how many of those are parked (held back by a group limit)
local now = int(now_ms())
local totals = redis.call('HMGET', K.stats, 'processed', 'failed')

-- Within a priority the queue is FIFO, so the head of each priority is its longest waiting
-- job; priorities in use are few, and each costs one lookup and one record read.
-- Grouped jobs keep the same order in grouped, so its heads are looked up the same way.
local oldest = ''
for _, set in ipairs({K.queued, K.grouped}) do
  local head = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
  for _ = 1, 201 do -- priorities -100..100
    if #head == 0 then break end
    local enqueued = tonumber(string.match(redis.call('HGET', K.jobs, head[1]) or '', '^(%d+)|'))
    if enqueued and (oldest == '' or enqueued < oldest) then oldest = enqueued end
    local next_priority = (math.floor(tonumber(head[2]) / PRIORITY_STEP) + 1) * PRIORITY_STEP
    head = redis.call('ZRANGEBYSCORE', set, int(next_priority), '+inf', 'WITHSCORES',
      'LIMIT', 0, 1)
  end
end
local held = tonumber(redis.call('HGET', K.flow, 'held')) or 0

return {
  now, queued_count(),
  redis.call('ZCOUNT', K.processing, now, '+inf'),
  redis.call('ZCOUNT', K.processing, '-inf', '(' .. now),
  redis.call('ZCARD', K.scheduled), redis.call('ZCARD', K.failed),
  tonumber(totals[1]) or 0, tonumber(totals[2]) or 0,
  redis.call('EXISTS', K.paused), oldest == '' and '' or int(oldest),
  redis.call('HGETALL', K.stats),
  held > tonumber(now) and int(held) or 0, redis.call('ZCARD', K.groups),
  redis.call('ZCARD', K.parked),
}
