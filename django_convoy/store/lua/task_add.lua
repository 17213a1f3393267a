-- task_add: queue one run of a Django task (django_convoy.backends) and create its result, unless
-- its job id already stands for a live run. The same state machine as add.lua (add_one).
-- KEYS: the queue's, with EXTRA_KEY the HASH of the new run's result (django_convoy.store.keys.
--   task_result_key, in the error log's place: no task_* script records failures there)
-- ARGV: id, body (its payload carries the result id), if_processing ('ignore' | 'rerun'),
--   due_ms (Redis-clock ms; <= now: queue it now), priority, keep_ms (how long a result HASH
--   outlives its last write while its run is waiting), flow_spec (the queue's limits, which a
--   run handed to a waiting worker respects: limits.flow_spec; '': none)
-- Returns: now_ms, outcome, result id. outcome 'added' (queued, scheduled or handed over now),
--   'rerun' (to run once the live run ends) or 'exists': then the result id is the live run's
--   (the pending rerun's, if there is one: it stands for every later request), or '' when that
--   run was not enqueued through Django's Tasks framework.
refuse_corrupt_keys('hash')
local id, body = ARGV[1], ARGV[2]
local keep = tonumber(ARGV[6])
local now = now_ms()
local ctx = {
  now = now, if_processing = ARGV[3], due = tonumber(ARGV[4]), priority = tonumber(ARGV[5]),
  keep_rerun = true, flow = read_flow(ARGV[7]),
}
if ctx.due <= now then ctx.waiting, ctx.waiting_score = waiting_worker(now) end

local state, hold = plan_one(id, ctx)
local added, _, rerun = add_one(id, body, ctx, redis.call('INCR', K.seq), state, hold)
if ctx.wake then wake_one() end
count_in(added == 1 and 'added' or 'duplicate', 1)
write_counts()
if added == 1 then
  redis.call('HSETNX', K.stats, 'born', int(now)) -- as add.lua does: the queue's birth mark
  create_task_result(id, body, now, keep + math.max(0, ctx.due - now))
  return {int(now), 'added', result_of(body)}
end
if rerun == 1 then
  create_task_result(id, body, now, keep)
  return {int(now), 'rerun', result_of(body)}
end
if rerun == 2 then
  return {int(now), 'exists', result_of(string.match(redis.call('HGET', K.rerun, id), '^-?%d+|(.*)$'))}
end
return {int(now), 'exists', result_of(read_job(id).body)}
