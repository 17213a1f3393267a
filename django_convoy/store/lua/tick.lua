-- tick: fire one tick of a schedule (or run it now): check and advance the schedule's last
-- fired tick and add the tick's job with add_one, the one add state machine, in one step. So a
-- tick fires at most once however many schedulers run, and never before its time by Redis's
-- clock, whatever the clock of the scheduler that calls.
-- KEYS: the queue's (prelude), then
--   16 EXTRA_KEY  the HASH of the run's result when the task is a Django task (written only
--                 then; a @convoy_task's tick passes the schedules HASH in its place, unread)
--   17 schedules  HASH schedule name -> "last_tick_ms|fired_ms|outcome|job id": the last tick
--                 fired or passed over, when (Redis clock), what became of it, and the job of
--                 the schedule's last run (added by a tick or run now)
--   18 paused     SET of the names of the paused schedules
-- ARGV: name, tick_ms (-1: run now, outside the ticks), prev_ms (the schedule's tick before it;
--   -1: not known), next_ms (the tick after it), late_ms (how late a tick may still fire; past
--   that it is missed), catch_up ('latest' | 'none'), overlap ('skip' | 'allow'), job id, body,
--   priority, jitter_ms (the job is due that long after its tick), keep_ms (a Django task's
--   result: how long it is kept past the run's wait; 0: not a Django task), flow_spec (the
--   queue's limits, which a run handed to a waiting worker respects; '': none)
-- Returns: outcome, now_ms, last_tick_ms (the schedule's after this call; -1: none), job id
--   (the job this call added, or the live run it skipped for). Outcomes that change nothing:
--   'early' (tick_ms is ahead of Redis's clock), 'done' (fired or passed over already),
--   'behind' (a tick before this one is due, still on time and not fired: fire that first).
--   Outcomes that advance the last tick: 'added', 'skipped' (overlap 'skip' and the schedule's
--   last run is queued, scheduled or processing), 'exists' (a job holds the tick's id already),
--   'missed' (later than late_ms, and catch_up does not fire it), 'paused'.
local SCHEDULES, PAUSED = KEYS[QUEUE_KEYS + 2], KEYS[QUEUE_KEYS + 3]
local name, tick, prev, next_tick = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local late, catch_up, overlap, id, body = tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local priority, jitter, keep = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local flow = read_flow(ARGV[13])
local now = now_ms()
local last, last_job = -1, ''
local record = redis.call('HGET', SCHEDULES, name)
if record then
  local l, _, _, j = string.match(record, '^(-?%d+)|(%d*)|([^|]*)|(.*)$')
  last, last_job = tonumber(l) or -1, j or ''
end
local manual = tick < 0

local function reply(outcome, new_last, job)
  if outcome ~= 'early' and outcome ~= 'done' and outcome ~= 'behind' then
    redis.call('HSET', SCHEDULES, name, int(new_last) .. '|' .. int(now) .. '|' .. outcome .. '|' .. job)
  end
  return {outcome, int(now), int(new_last), job}
end

if not manual then
  if tick > now then return {'early', int(now), int(last), ''} end
  if last >= tick then return {'done', int(now), int(last), ''} end
  -- Ticks between the last one and this one that are still on time fire first, in order.
  if last >= 0 and prev > last and now - prev <= late then
    return {'behind', int(now), int(last), ''}
  end
end
-- Past the checks every scheduler but the first stops at, the ones of the keys it may write
-- (refuse_corrupt_keys: Redis does not roll a script back).
refuse_wrong_type(SCHEDULES, 'hash')
refuse_wrong_type(PAUSED, 'set')
refuse_corrupt_keys(keep > 0 and 'hash' or nil)
if not manual then
  if redis.call('SISMEMBER', PAUSED, name) == 1 then return reply('paused', tick, last_job) end
  -- Missed: every scheduler was away past late_ms. catch_up 'latest' fires the latest missed
  -- tick (the one whose next tick is not missed too); a schedule never fired has none to catch.
  if now - tick > late and (catch_up ~= 'latest' or last < 0 or now - next_tick > late) then
    return reply('missed', tick, last_job)
  end
end
local new_last = manual and last or tick
if overlap == 'skip' and last_job ~= '' then
  local state = state_of(last_job, now)
  if state and state ~= 'failed' then
    if manual then return {'skipped', int(now), int(last), last_job} end
    return reply('skipped', new_last, last_job)
  end
end
local ctx = {
  now = now, if_processing = 'ignore', priority = priority, keep_rerun = false,
  due = manual and now or math.max(now, tick + jitter), flow = flow,
}
if ctx.due <= now then ctx.waiting, ctx.waiting_score = waiting_worker(now) end
local state, hold = plan_one(id, ctx)
local added = add_one(id, body, ctx, redis.call('INCR', K.seq), state, hold)
if ctx.wake then wake_one() end
if added == 0 then return reply('exists', new_last, id) end
redis.call('HSETNX', K.stats, 'born', int(now))
if keep > 0 then create_task_result(id, body, now, keep + ctx.due - now) end
return reply('added', new_last, id)
