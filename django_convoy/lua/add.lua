-- add: queue jobs by id, unless the id is already queued, scheduled or processing.
-- ARGV: if_processing ('ignore' | 'rerun'), delay_ms, priority, then (id, body) pairs.
-- Returns a flat list: per job, added (0 | 1) and the state its id is in now: 'processing'
-- for the one job a call may hand to a waiting worker (see hand_over in the prelude).
refuse_corrupt_keys()
local if_processing, delay, priority = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local out = {}
local queued_any, added_any = false, false
-- One block of sequence numbers for the whole call; those of ids not added are skipped.
local seq = redis.call('INCRBY', K.seq, (#ARGV - 3) / 2) - (#ARGV - 3) / 2
-- A worker waiting to be handed the first job (a delayed job waits in any case).
local waiting, waiting_score = nil, nil
if delay <= 0 then waiting, waiting_score = waiting_worker(now) end
-- By the schema an id without a record (the usual add) is in no state, which spares three of
-- state_of's four lookups; running twice at once must not follow even from a record deleted
-- by hand, so a processing entry is looked for all the same.
local function state_of_new(id)
  if redis.call('HEXISTS', K.jobs, id) == 1 then return state_of(id, now) end
  local deadline = redis.call('ZSCORE', K.processing, id)
  if deadline then return tonumber(deadline) < now and 'jammed' or 'processing' end
  return nil
end

for i = 4, #ARGV, 2 do
  local id, body = ARGV[i], ARGV[i + 1]
  local state = state_of_new(id)
  local added = 0
  seq = seq + 1
  if state == nil or state == 'failed' then
    if waiting then
      hand_over(id, body, priority, now, seq, waiting, waiting_score, state == nil)
      waiting = nil
      state = 'processing'
    else
      start_fresh(id, body, priority, now, state == nil)
      if delay > 0 then
        redis.call('ZADD', K.scheduled, int(now + delay), id)
        state = 'scheduled'
      else
        push_queued(id, priority, seq)
        state = 'queued'
      end
      queued_any = true
    end
    added = 1
    added_any = true
  elseif (state == 'processing' or state == 'jammed') and if_processing == 'rerun' then
    redis.call('HSET', K.rerun, id, priority .. '|' .. body)
  end
  out[#out + 1] = added
  out[#out + 1] = state
end
-- A scheduled job wakes a worker too, so that it learns the new earliest due time.
if queued_any then
  wake_one()
end
if added_any then
  redis.call('HSETNX', K.stats, 'born', int(now))
end
return out
