-- renew: extend the leases of runs a worker still holds.
-- ARGV: lease_ms, then (id, token) pairs
-- Returns per job: 1 renewed, 0 refused (the job was taken from this run).
local now = now_ms()
local deadline = int(now + tonumber(ARGV[1]))
local out = {}
local refused = 0
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if owns(id, token) then
    redis.call('ZADD', K.processing, 'XX', deadline, id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
    refused = refused + 1
  end
end
-- pcall: the renewals are written; a mangled stats key must not make them look refused.
if refused > 0 then redis.pcall('HINCRBY', K.stats, 'stale', refused) end
return out
