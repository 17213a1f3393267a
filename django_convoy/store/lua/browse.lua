-- browse: one page of the jobs in one state, read-only (the admin's listings).
-- ARGV: state ('queued' | 'processing' | 'jammed' | 'scheduled' | 'failed'), offset, count,
--   preview_bytes
-- Returns: now_ms, how many jobs are in that state, then per job on the page: id, score,
--   body length in bytes, the body's first preview_bytes at most,
--   "enqueued_ms|attempts|jams|priority", run, last error's type, last error's message (first
--   preview_bytes at most), pending rerun flag (0 | 1), how long the failed run took (ms, or
--   '')
-- Pages by rank, so each call costs O(log N + count) however many jobs the state holds.
-- Order: queued in queue order, scheduled by due time, jammed longest past its lease first,
-- processing by lease deadline, failed newest first.
local state, offset, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local preview = tonumber(ARGV[4])
local now = now_ms()

-- The first bytes of text, cut before a UTF-8 continuation byte so that the client can decode it.
local function head(text)
  if #text <= preview then return text end
  local cut = preview
  while cut > 0 and string.byte(text, cut + 1) >= 128 and string.byte(text, cut + 1) < 192 do
    cut = cut - 1
  end
  return string.sub(text, 1, cut)
end

-- processing holds both live and jammed runs, ordered by lease deadline: the jammed ones
-- (deadline before now) are its first ranks.
local set, first, total = K[state], 0, 0
if state == 'processing' or state == 'jammed' then
  set = K.processing
  local jammed = redis.call('ZCOUNT', K.processing, '-inf', '(' .. int(now))
  if state == 'jammed' then
    total = jammed
  else
    first, total = jammed, redis.call('ZCARD', K.processing) - jammed
  end
elseif state == 'queued' then
  total = queued_count()
else
  total = redis.call('ZCARD', set)
end

local out = {int(now), total}
local stop = math.min(offset + count, total) - 1
if offset > stop then return out end
local page
if state == 'queued' and groups_used() then
  -- Queued jobs with a group wait in grouped, by the same scores: the page is the merge of
  -- both sets' first ranks (O(offset + count)).
  local plain = redis.call('ZRANGE', K.queued, 0, stop, 'WITHSCORES')
  local grouped = redis.call('ZRANGE', K.grouped, 0, stop, 'WITHSCORES')
  local i, j, rank = 1, 1, 0
  page = {}
  while rank <= stop and (i <= #plain or j <= #grouped) do
    local from_plain = j > #grouped or (i <= #plain and tonumber(plain[i + 1]) < tonumber(grouped[j + 1]))
    local id, score
    if from_plain then
      id, score, i = plain[i], plain[i + 1], i + 2
    else
      id, score, j = grouped[j], grouped[j + 1], j + 2
    end
    if rank >= offset then
      local n = #page
      page[n + 1], page[n + 2] = id, score
    end
    rank = rank + 1
  end
elseif state == 'failed' then
  page = redis.call('ZREVRANGE', set, first + offset, first + stop, 'WITHSCORES')
else
  page = redis.call('ZRANGE', set, first + offset, first + stop, 'WITHSCORES')
end

for i = 1, #page, 2 do
  local id = page[i]
  local job = with_live_attempt(id, read_job(id))
  local error_type, error_message, ran_ms = '', '', ''
  local error_json = redis.call('HGET', K.errors, id)
  if error_json then
    local ok, err = pcall(cjson.decode, error_json)
    if ok and type(err) == 'table' then
      error_type = tostring(err.type or '')
      error_message = head(tostring(err.message or ''))
      ran_ms = tonumber(err.ran_ms) and int(tonumber(err.ran_ms)) or ''
    else
      error_message = head(error_json)
    end
  end
  out[#out + 1] = id
  out[#out + 1] = page[i + 1]
  out[#out + 1] = #job.body
  out[#out + 1] = head(job.body)
  out[#out + 1] = counters_of(job)
  out[#out + 1] = redis.call('HGET', K.run, id) or ''
  out[#out + 1] = error_type
  out[#out + 1] = error_message
  out[#out + 1] = redis.call('HEXISTS', K.rerun, id)
  out[#out + 1] = ran_ms
end
return out
