-- heartbeat: register a worker as alive (its own keys, not a queue's).
-- KEYS: 1 workers registry ZSET id -> last beat (ms), 2 this worker's HASH
-- ARGV: worker_id, ttl_seconds, info_json, interval_ms (how often it beats)
-- Returns now_ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[2], 'info', ARGV[3], 'beat', string.format('%.0f', now), 'every', ARGV[4])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[1])
-- Forget workers that have been gone for an hour.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - 3600000))
return string.format('%.0f', now)
