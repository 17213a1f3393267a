-- ack: end runs that succeeded, releasing their ids (or queueing a requested rerun).
-- ARGV: (id, token) pairs
-- Returns per job: 1 released, 2 rerun queued, 0 refused (the token no longer holds the job).
local now = now_ms()
local out = {}
for i = 1, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if owns(id, token) then
    stop_run(id)
    tick('processed', now)
    if queue_pending_rerun(id, now) then
      out[#out + 1] = 2
    else
      release(id)
      out[#out + 1] = 1
    end
  else
    out[#out + 1] = 0
  end
end
return out
