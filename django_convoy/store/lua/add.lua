-- add: queue jobs by id, unless the id is already queued, scheduled or processing.
-- ARGV: if_processing ('ignore' | 'rerun'), delay_ms, priority, if_queued ('keep' |
--   'replace'), hold_ms (0: none), group ('': none; the group key of every job of the call),
--   flow_spec (the queue's limits: limits.flow_spec; '': none), then (id, body) pairs.
-- Returns a flat list: per job, added (0 | 1; 2: the waiting job's body was replaced), the
-- state its id is in now ('processing' for the one job a call may hand to a waiting worker:
-- see hand_over in the prelude; 'held': refused by a hold_for), and rerun (1: a rerun of the
-- processing id is pending after this call; see add_one).
-- Counts the ids added and the others (duplicate: live already, replaced or held) in stats.
--
-- Plan, then write: every read comes first, and each key the writes may touch is checked on
-- the way, by a read the add makes anyway (checked_read) or else by refuse_wrong_type, so
-- garbage in any of them stops the add before its first write, as refuse_corrupt_keys would,
-- for the keys this call may write only (a plain add reads three more keys, not fourteen).
local now = now_ms()
local hold_ms = tonumber(ARGV[5])
local ctx = {
  now = now, if_processing = ARGV[1], due = now + tonumber(ARGV[2]),
  priority = tonumber(ARGV[3]), keep_rerun = false, if_queued = ARGV[4],
  hold_ms = hold_ms > 0 and hold_ms or nil,
  group = ARGV[6] ~= '' and ARGV[6] or nil, flow = read_flow(ARGV[7]),
}
local FIRST = 8 -- the first pair's index
local n = (#ARGV - FIRST + 1) / 2

-- Each id's state and hold (plan_one: its reads check jobs, processing and held). An id
-- repeated in the call is read again at its turn, after its first occurrence's writes.
local states, holds, planned, seen = {}, {}, {}, {}
local live = false -- some id has a record or a run: its branch may touch the keys below
for i = FIRST, #ARGV, 2 do
  local id = ARGV[i]
  if not seen[id] then
    seen[id], planned[i] = true, true
    states[i], holds[i] = plan_one(id, ctx)
    live = live or states[i] ~= nil
  end
end
refuse_bad_seq()
local wake_empty = checked_read('list', 'LLEN', K.wake) == 0
local born = checked_read('hash', 'HEXISTS', K.stats, 'born') == 1
refuse_wrong_type(K.queued, 'zset')
if ctx.due > now or ctx.if_queued == 'replace' or live then
  refuse_wrong_type(K.scheduled, 'zset')
end
if live then -- a failed id added again loses its failed record and last error
  refuse_wrong_type(K.failed, 'zset')
  refuse_wrong_type(K.errors, 'hash')
end
if ctx.if_processing == 'rerun' then refuse_wrong_type(K.rerun, 'hash') end
if ctx.hold_ms then refuse_wrong_type(K.held, 'zset') end
-- A job with a group, a queue with limits, or a queue whose jobs have groups: the flow keys.
if ctx.group or ctx.flow or groups_used() then refuse_corrupt_flow_keys() end
-- A worker waiting to be handed the first job (a delayed job waits in any case): find_waiting
-- checks idle and the worker's inbox; the run record is the hand-over's to write too.
local drop
if ctx.due <= now then
  ctx.waiting, ctx.waiting_score, drop = find_waiting(now)
  if ctx.waiting then refuse_wrong_type(K.run, 'hash') end
end

-- The writes. One block of sequence numbers for the whole call; those of ids not added are
-- skipped.
local seq = redis.call('INCRBY', K.seq, n) - n
drop_requests(drop)
local out = {}
local added_n = 0
for i = FIRST, #ARGV, 2 do
  seq = seq + 1
  local id = ARGV[i]
  local state, hold = states[i], holds[i]
  if not planned[i] then state, hold = plan_one(id, ctx) end
  local added, now_in, rerun = add_one(id, ARGV[i + 1], ctx, seq, state, hold)
  if added == 1 then added_n = added_n + 1 end
  out[#out + 1] = added
  out[#out + 1] = now_in
  out[#out + 1] = rerun > 0 and 1 or 0
end
-- A scheduled job wakes a worker too, so that it learns the new earliest due time.
if ctx.wake and wake_empty then redis.call('RPUSH', K.wake, '1') end
if added_n > 0 and not born then redis.call('HSETNX', K.stats, 'born', int(now)) end
count_in('added', added_n)
count_in('duplicate', n - added_n)
write_counts()
return out
