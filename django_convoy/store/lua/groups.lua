-- groups: one page of the groups that have queued or processing jobs, busiest first, read-only
-- (the admin's Groups list; paged in Redis, whatever the number of groups).
-- ARGV: offset, count
-- Returns: now_ms, how many groups there are, until when RATE_LIMIT holds claims back (ms; 0:
--   it does not now), then per group on the page: its key, processing runs, queued jobs, and
--   why it is held back ('': it is not; 'cap': at GROUP_CONCURRENCY until a run ends; else
--   the ms at which GROUP_RATE_LIMIT lets its next run start)
local offset, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local held = tonumber(redis.call('HGET', K.flow, 'held')) or 0
local out = {int(now), redis.call('ZCARD', K.groups), held > now and int(held) or 0}
local page = redis.call('ZREVRANGE', K.groups, offset, offset + count - 1, 'WITHSCORES')
for i = 1, #page, 2 do
  local group = page[i]
  local parked = redis.call('ZSCORE', K.parked, group)
  out[#out + 1] = group
  out[#out + 1] = tonumber(page[i + 1])
  out[#out + 1] = redis.call('ZLEXCOUNT', K.lanes, '[' .. group .. '\0', '(' .. group .. '\1')
  out[#out + 1] = (parked == 'inf' and 'cap') or (parked and int(tonumber(parked))) or ''
end
return out
