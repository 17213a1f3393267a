-- ack_claim: end runs that succeeded and claim as many more in one round trip, so that a
-- busy worker's freed slots go straight to the next jobs (django_convoy.worker's reporter).
-- ARGV: max_jobs, worker_id, lease_ms, promote_limit, idle_ms, flow_spec, then (id, token) pairs
--   of the runs
-- Returns: {the acks' replies as ack.lua's, what claim_jobs returns}
refuse_corrupt_keys()
local now = now_ms() -- one TIME for both steps
local acks = ack_runs(7, now)
local claimed = claim_jobs(
  tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6],
  now)
write_counts() -- the acks' and the claim's counts, in one write
return {acks, claimed}
