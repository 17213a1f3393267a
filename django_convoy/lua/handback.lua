-- handback: a stopping worker returns runs it will not finish; they are queued again
-- without counting as a jam.
-- ARGV: (id, token) pairs
-- Returns per job: 1 queued again, 0 refused (the job was taken from this run).
refuse_corrupt_keys()
local out = {}
local any = false
for i = 1, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if owns(id, token) then
    stop_run(id)
    push_queued(id, priority_of(id))
    any = true
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if any then wake_one() end
return out
