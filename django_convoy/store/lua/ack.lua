-- ack: end runs that succeeded, releasing their ids (or queueing a requested rerun).
-- ARGV: (id, token) pairs
-- Returns per job: 1 released, 2 rerun queued, 0 refused (the token no longer holds the job).
refuse_corrupt_keys()
local out = ack_runs(1)
write_counts()
return out
