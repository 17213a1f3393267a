-- remove: delete one job, if it is in one of the allowed states, releasing its id.
-- ARGV: id, allowed states separated by commas (e.g. 'queued,scheduled,failed' or 'jammed')
-- Returns the state it was removed from, or {err} naming the state it is in instead.
refuse_corrupt_keys()
local id, allowed = ARGV[1], ',' .. ARGV[2] .. ','
local state = state_of(id, now_ms())
if not state or not string.find(allowed, ',' .. state .. ',', 1, true) then
  return {'not-removed', state or ''}
end
local set = state == 'jammed' and 'processing' or state
redis.call('ZREM', K[set], id)
redis.call('HDEL', K.run, id)
redis.call('HDEL', K.rerun, id)
release(id)
return {'removed', state}
