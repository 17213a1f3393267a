-- requeue: give failed jobs a fresh run with the same body and priority.
-- ARGV: limit, then ids (none: the oldest failed jobs, up to limit)
-- Returns the ids queued; ids that are no longer failed are skipped.
refuse_corrupt_keys()
local limit = tonumber(ARGV[1])
local ids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGE', K.failed, 0, limit - 1)
end
local now = now_ms()
local out = {}
for _, id in ipairs(ids) do
  if redis.call('ZREM', K.failed, id) == 1 then
    local m = read_job(id)
    start_fresh(id, m.body, m.priority, now)
    push_queued(id, m.priority)
    out[#out + 1] = id
  end
end
if #out > 0 then wake_one() end
return out
