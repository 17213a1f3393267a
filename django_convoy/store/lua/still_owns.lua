-- still_owns: whether a run still holds its job: the job's run carries its token, and its lease
-- has not passed by Redis's clock (a run whose lease passed is jammed, whether or not a jam
-- guard has taken the job yet). Read-only.
-- ARGV: id, token
-- Returns 1 (it holds the job) or 0.
local id, token = ARGV[1], ARGV[2]
if parse_run(redis.call('HGET', K.run, id) or '') ~= token then return 0 end
local deadline = redis.call('ZSCORE', K.processing, id)
if deadline and tonumber(deadline) >= now_ms() then return 1 end
return 0
