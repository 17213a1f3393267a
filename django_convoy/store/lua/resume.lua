-- resume: let workers claim from a paused queue again, and wake one of them.
-- ARGV: none
-- Returns 1 if the queue was paused, else 0.
local was_paused = redis.call('DEL', K.paused)
wake_one()
return was_paused
