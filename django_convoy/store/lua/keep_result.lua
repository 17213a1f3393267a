-- keep_result: keep what a run's code returned, for RESULT_TTL; only the run holding the job may.
-- KEYS: the queue's, with EXTRA_KEY the job's result STRING (in the error log's place)
-- ARGV: id, token, kept (1: text is the value's JSON; 0: text says why the value was not kept),
--   text, ttl_ms
-- Returns 1 kept, 0 refused (the token no longer holds the job: a late worker writes nothing).
-- The result: "finished_ms|started_ms|attempt|kept|worker|" .. text (records.JobResult reads
-- it); a SET replaces the last run's, whatever the key held.
local id, token, kept, text, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if not owns(id, token) then
  redis.pcall('HINCRBY', K.stats, 'stale', 1) -- pcall: nothing else is written, or checked
  return 0
end
local _, started, attempt, worker = parse_run(redis.call('HGET', K.run, id))
attempt = math.max(attempt or 0, read_job(id).attempts)
local head = int(now_ms()) .. '|' .. (started or '') .. '|' .. attempt .. '|' .. kept .. '|'
redis.call('SET', EXTRA_KEY, head .. (worker or '') .. '|' .. text, 'PX', int(ttl))
return 1
