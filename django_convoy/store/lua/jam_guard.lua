-- jam_guard: recover runs whose lease expired (their worker died or stopped renewing).
-- ARGV: mode ('recover' | 'drop'), max_jams, limit, failed_ttl_ms, errorlog_keep,
--   errorlog_ttl_seconds
-- Returns per recovered job: id, action ('requeued' | 'failed' | 'rerun' | 'dropped'),
--   worker, started_ms, deadline_ms, attempts, jams
-- Atomic: when many jam guards run at once, each jammed run is recovered exactly once.
refuse_corrupt_keys('list')
local mode, max_jams, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local jammed = redis.call('ZRANGEBYSCORE', K.processing, '-inf', '(' .. int(now),
  'WITHSCORES', 'LIMIT', 0, limit)
local out = {}
local requeued = false
local actions = {}
for i = 1, #jammed, 2 do
  local id, deadline = jammed[i], jammed[i + 1]
  local _, started, attempt, worker = parse_run(redis.call('HGET', K.run, id) or '')
  stop_run(id)
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
