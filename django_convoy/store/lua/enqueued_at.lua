-- enqueued_at: Redis's clock and when a job was added, for a worker to tell whether the job
-- expired before it started (a task's expires).
-- ARGV: id
-- Returns: now_ms, enqueued_ms (0 when the id has no job).
local now = now_ms()
local raw = redis.call('HGET', K.jobs, ARGV[1]) or ''
return {int(now), string.match(raw, '^(%d+)|') or '0'}
