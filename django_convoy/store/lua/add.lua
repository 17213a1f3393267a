-- add: queue jobs by id, unless the id is already queued, scheduled or processing.
-- ARGV: if_processing ('ignore' | 'rerun'), delay_ms, priority, if_queued ('keep' |
--   'replace'), hold_ms (0: none), group ('': none; the group key of every job of the call),
--   flow_spec (the queue's limits: limits.flow_spec; '': none), then (id, body) pairs.
-- Returns a flat list: per job, added (0 | 1; 2: the waiting job's body was replaced), the
-- state its id is in now ('processing' for the one job a call may hand to a waiting worker:
-- see hand_over in the prelude; 'held': refused by a hold_for), and rerun (1: a rerun of the
-- processing id is pending after this call; see add_one).
-- Counts the ids added and the others (duplicate: live already, replaced or held) in stats.
refuse_corrupt_keys()
local now = now_ms()
local hold_ms = tonumber(ARGV[5])
local ctx = {
  now = now, if_processing = ARGV[1], due = now + tonumber(ARGV[2]),
  priority = tonumber(ARGV[3]), keep_rerun = false, if_queued = ARGV[4],
  hold_ms = hold_ms > 0 and hold_ms or nil,
  group = ARGV[6] ~= '' and ARGV[6] or nil, flow = read_flow(ARGV[7]),
}
local FIRST = 8 -- the first pair's index
-- One block of sequence numbers for the whole call; those of ids not added are skipped.
local seq = redis.call('INCRBY', K.seq, (#ARGV - FIRST + 1) / 2) - (#ARGV - FIRST + 1) / 2
-- A worker waiting to be handed the first job (a delayed job waits in any case).
if ctx.due <= now then ctx.waiting, ctx.waiting_score = waiting_worker(now) end
local out = {}
local added_n = 0
for i = FIRST, #ARGV, 2 do
  seq = seq + 1
  local added, state, rerun = add_one(ARGV[i], ARGV[i + 1], ctx, seq)
  if added == 1 then added_n = added_n + 1 end
  out[#out + 1] = added
  out[#out + 1] = state
  out[#out + 1] = rerun > 0 and 1 or 0
end
-- A scheduled job wakes a worker too, so that it learns the new earliest due time.
if ctx.wake then wake_one() end
if added_n > 0 then redis.call('HSETNX', K.stats, 'born', int(now)) end
count_in('added', added_n)
count_in('duplicate', (#ARGV - FIRST + 1) / 2 - added_n)
write_counts()
return out
