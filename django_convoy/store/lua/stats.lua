-- stats: the counts of one queue, split at the Redis clock's now.
-- ARGV: none
-- Returns: now_ms, queued, processing, jammed, scheduled, failed, processed_total,
--   failed_total, paused (0 | 1)
local now = int(now_ms())
local totals = redis.call('HMGET', K.stats, 'processed', 'failed')
return {
  now, redis.call('ZCARD', K.queued),
  redis.call('ZCOUNT', K.processing, now, '+inf'),
  redis.call('ZCOUNT', K.processing, '-inf', '(' .. now),
  redis.call('ZCARD', K.scheduled), redis.call('ZCARD', K.failed),
  tonumber(totals[1]) or 0, tonumber(totals[2]) or 0,
  redis.call('EXISTS', K.paused),
}
