-- jam_guard: recover runs whose lease expired (their worker died or stopped renewing).
-- ARGV: mode ('recover' | 'drop'), max_jams, limit, failed_ttl_ms, errorlog_keep,
--   errorlog_ttl_seconds, lease_ms, resumed (1: the caller's contact with Redis had a gap),
--   sent_ms (Redis's time when the caller sent this call, as it reckons it; 0: unknown)
-- Returns: now, held_until (0: not held), then per recovered job: id, action ('requeued' |
--   'failed' | 'rerun' | 'dropped'), worker, started_ms, deadline_ms, attempts, jams
-- Atomic: when many jam guards run at once, each jammed run is recovered exactly once.
--
-- The hold. After an outage every lease has expired by Redis's clock, the live workers' too:
-- none could renew. So once Redis is back, no jam guard recovers anything on this queue for
-- one lease, while live workers renew (a renewal works after expiry until a jam guard takes
-- the job). Back means: Redis's run id changed (a restart, or a failover to another server),
-- or a jam guard says its own contact with Redis had a gap (calls failed, or were held), or
-- this very call was held (by a paused Redis, a stalled network) for a third of a lease.
-- stats.server keeps the run id, stats.resumed when Redis was last seen back.
refuse_corrupt_keys('list')
local mode, max_jams, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local lease = tonumber(ARGV[7])
local sent = tonumber(ARGV[9]) or 0
local resumed = ARGV[8] == '1' or (sent > 0 and now - sent > lease / 3)
local info = redis.pcall('INFO', 'server') -- refused where INFO is renamed: no run id then
local server = type(info) == 'string' and string.match(info, 'run_id:(%w+)')
if server then
  local known = redis.call('HGET', K.stats, 'server')
  if known ~= server then
    redis.call('HSET', K.stats, 'server', server)
    resumed = resumed or known ~= false -- the first guard of a queue notes it, no more
  end
end
if resumed then redis.call('HSET', K.stats, 'resumed', int(now)) end
local held_until = (tonumber(redis.call('HGET', K.stats, 'resumed')) or 0) + lease
if now < held_until then return {int(now), int(held_until)} end
local jammed = redis.call('ZRANGEBYSCORE', K.processing, '-inf', '(' .. int(now),
  'WITHSCORES', 'LIMIT', 0, limit)
local out = {int(now), 0}
local requeued = false
local actions = {}
for i = 1, #jammed, 2 do
  local id, deadline = jammed[i], jammed[i + 1]
  local _, started, attempt, worker = parse_run(redis.call('HGET', K.run, id) or '')
  stop_run(id, now)
  local m = read_job(id)
  if attempt and attempt > m.attempts then m.attempts = attempt end
  local action
  if mode == 'drop' then
    redis.call('HDEL', K.rerun, id)
    release(id)
    action = 'dropped'
  else
    m.jams = m.jams + 1
    write_job(id, m)
    if m.jams > max_jams then
      local error_json = cjson.encode({
        type = 'django_convoy.exceptions.JobJammed',
        message = 'jammed ' .. m.jams .. ' times (MAX_JAMS is ' .. max_jams ..
          '): its worker died or stopped renewing the lease on every run',
        traceback = '', at = now, attempt = m.attempts, id = id, reason = 'jammed',
      })
      redis.call('HSET', K.errors, id, error_json)
      log_error(error_json, tonumber(ARGV[5]), tonumber(ARGV[6]))
      action = finish_failed(id, now, tonumber(ARGV[4]))
    else
      push_queued(id, m.priority)
      requeued = true
      action = 'requeued'
    end
  end
  actions[action] = (actions[action] or 0) + 1
  out[#out + 1] = id
  out[#out + 1] = action
  out[#out + 1] = worker or ''
  out[#out + 1] = started or '0'
  out[#out + 1] = deadline
  out[#out + 1] = m.attempts
  out[#out + 1] = m.jams
end
if requeued then wake_one() end
for action, n in pairs(actions) do count_in('recovered:' .. action, n) end
write_counts() -- with the failed total of runs jammed too often (finish_failed)
return out
