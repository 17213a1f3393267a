-- running: who runs what of this queue now, as Redis knows it (the admin's workers table),
-- read-only.
-- ARGV: how many runs to list per worker (its longest running first)
-- Returns: now_ms, then per worker holding runs: worker id, how many runs it holds, how many
--   are listed, then (id, started_ms) of each listed run.
local limit = tonumber(ARGV[1])
local by_worker, order = {}, {}
local runs = redis.call('HGETALL', K.run)
for i = 1, #runs, 2 do
  local _, started, _, worker = parse_run(runs[i + 1])
  if worker then
    local held = by_worker[worker]
    if not held then
      held = {}
      by_worker[worker] = held
      order[#order + 1] = worker
    end
    held[#held + 1] = {runs[i], tonumber(started) or 0}
  end
end
local out = {int(now_ms())}
for _, worker in ipairs(order) do
  local held = by_worker[worker]
  table.sort(held, function(a, b) return a[2] < b[2] end)
  local listed = math.min(limit, #held)
  out[#out + 1] = worker
  out[#out + 1] = #held
  out[#out + 1] = listed
  for i = 1, listed do
    out[#out + 1] = held[i][1]
    out[#out + 1] = int(held[i][2])
  end
end
return out
