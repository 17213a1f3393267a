-- claim: promote due scheduled jobs, then hand up to max_jobs queued jobs to one worker.
-- ARGV: max_jobs, worker_id, lease_ms, promote_limit, idle_ms, flow_spec (see claim_jobs)
-- Returns: what claim_jobs (in the prelude) returns.
refuse_corrupt_keys()
local out = claim_jobs(
  tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6])
write_counts()
return out
