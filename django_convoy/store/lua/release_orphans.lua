-- release_orphans: after a claim whose reply was lost, queue again the runs held under this
-- worker's id that it does not know of (it never learned their tokens, so nobody would renew
-- them until the jam guard took them back a lease later). Not a jam; the claim's attempt stays
-- counted, as Redis cannot tell a run that never started from one that did.
-- ARGV: worker_id, then the tokens of every run of this queue the worker knows of
-- Returns the ids queued again.
refuse_corrupt_keys()
local worker = ARGV[1]
-- Runs handed to the worker are among those it does not know; their inbox entries go with them,
-- or a worker's BLPOP could still start one that is queued again.
redis.call('DEL', inbox_of(worker))
local known = {}
for i = 2, #ARGV do known[ARGV[i]] = true end
local out = {}
local entries = redis.call('HGETALL', K.run)
for i = 1, #entries, 2 do
  local id, run = entries[i], entries[i + 1]
  local token, _, attempt, holder = parse_run(run)
  if holder == worker and not known[token] and redis.call('ZSCORE', K.processing, id) then
    stop_run(id)
    push_queued(id, keep_attempt(id, attempt).priority)
    out[#out + 1] = id
  end
end
if #out > 0 then wake_one() end
return out
