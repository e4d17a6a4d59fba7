-- Positions: ``offset:<stream>`` expires REDIS_STREAM_TTL_S after the stream's last event, so
-- that streams that come and go (a room per user, per order) do not stay in Redis for good.
-- A stream that comes back must not hand out an offset again within the epoch (a client that
-- held it would take new events for seen ones): it starts from the *floor*, the highest
-- offset handed out before any position can have expired. ``offset:max`` is the highest
-- offset so far; ``offset:marks`` holds it per MARK_S bucket (the value at the bucket's last
-- append); the floor is the mark of the newest bucket at or before now - TTL, or 0 while no
-- position can have expired. It moves once per bucket at most, so that a client that joined a
-- stream before its first event still resumes from the position it was given.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function floor_at(p, now, ttl_ms, mark_ms)
  local cutoff = math.floor((now - ttl_ms) / mark_ms)
  local marks = redis.call('HGETALL', p .. 'offset:marks')
  local best, value = nil, 0
  for n = 1, #marks, 2 do
    local bucket = tonumber(marks[n])
    if bucket <= cutoff and (best == nil or bucket > best) then
      best, value = bucket, tonumber(marks[n + 1])
    end
  end
  return value, best, marks
end
