-- remove: delete one job, if it is in one of the allowed states, releasing its id.
-- ARGV: id, allowed states separated by commas (e.g. 'queued,scheduled,failed' or 'jammed')
-- Returns the state it was removed from, or {err} naming the state it is in instead.
refuse_corrupt_keys()
local id, allowed = ARGV[1], ',' .. ARGV[2] .. ','
local now = now_ms()
local state = state_of(id, now)
if not state or not string.find(allowed, ',' .. state .. ',', 1, true) then
  return {'not-removed', state or ''}
end
if state == 'queued' then
  unqueue(id, now)
elseif state == 'processing' or state == 'jammed' then
  stop_run(id, now)
else
  redis.call('ZREM', K[state], id)
end
redis.call('HDEL', K.run, id)
redis.call('HDEL', K.rerun, id)
release(id)
return {'removed', state}
