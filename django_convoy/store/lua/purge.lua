-- purge: remove up to limit waiting (queued, grouped or not, then scheduled) jobs, releasing
-- their ids.
-- ARGV: limit
-- Returns the number removed; call again until it returns 0.
refuse_corrupt_keys()
local limit = tonumber(ARGV[1])
local removed = 0
local now = now_ms()
for _, set in ipairs({K.queued, K.grouped, K.scheduled}) do
  local ids = redis.call('ZRANGE', set, 0, limit - removed - 1)
  for _, id in ipairs(ids) do
    if set == K.scheduled then redis.call('ZREM', set, id) else unqueue(id, now) end
    redis.call('HDEL', K.rerun, id)
    release(id)
  end
  removed = removed + #ids
  if removed >= limit then break end
end
return removed
