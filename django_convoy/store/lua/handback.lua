-- handback: a stopping worker returns runs it will not finish; they are queued again
-- without counting as a jam. A run that never started (handed to the worker as it stopped)
-- gives its attempt back too: nothing of the job ran, so its next run is the same attempt.
-- ARGV: 'started' | 'unstarted', then (id, token) pairs
-- Returns per job: 1 queued again, 0 refused (the job was taken from this run).
refuse_corrupt_keys()
local unstarted = ARGV[1] == 'unstarted'
local out = {}
local any = false
local refused = 0
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local attempt = held_run(id, token)
  if attempt ~= nil then
    stop_run(id)
    -- A run that never started leaves the record's attempts as they were: not counted.
    local m = unstarted and read_job(id) or keep_attempt(id, attempt)
    push_queued(id, m.priority)
    any = true
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
    refused = refused + 1
  end
end
if any then wake_one() end
count_in('stale', refused)
write_counts()
return out
