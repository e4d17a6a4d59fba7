-- Appends a batch. ARGV: prefix, epoch candidate, dedup TTL (s), feed max events, history max
-- events per stream (0: no history), window (ms), max bytes, room bytes, position TTL (ms),
-- mark bucket (ms), state max keys, state max bytes; then per message: id, room count, event,
-- head, sent_ms, key, version ('' for none), and per stream its key and 1 for a state room
-- (else 0). A state room keeps its latest event per key in ``state:<stream>`` (key -> JSON
-- {o: offset, v: version, e: event, h: head}), the keys by offset in ``state:order:<stream>``
-- and its bytes in ``state:bytes:<stream>``; an event whose version is not above the one held
-- for its key skips that room (no offset, not emitted there).
-- A head is the client payload's JSON without room, offset, epoch and closing brace: each
-- server completes it per room, so the data is stored once per message whatever its rooms.
-- Returns the epoch, then 1 (appended), 0 (a duplicate) or 2 (stale: older than every state
-- room's) per message.
--
-- With a history, the feed is trimmed here, by Redis, oldest first, while it is over any
-- bound (REDIS_FEED_MAX_EVENTS messages, REPLAY_MAX_BYTES, REPLAY_WINDOW_S of age), and never
-- of what this call appended (no server has read it yet); each trimmed message leaves the
-- index of every stream it was in. ``feed:bytes`` is what the feed holds. A feed entry's
-- fields: z (its bytes), r (its streams and offsets, JSON), then n, ep, e, s, h.
-- (positions.lua is prepended: now_ms, floor_at)
local p = ARGV[1]
local epoch = redis.call('SET', p .. 'epoch', ARGV[2], 'NX', 'GET') or ARGV[2]
local ttl, feed_max = ARGV[3], tonumber(ARGV[4])
local history_max, window_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
local max_bytes, room_bytes = tonumber(ARGV[7]), tonumber(ARGV[8])
local position_ttl, mark_ms = tonumber(ARGV[9]), tonumber(ARGV[10])
local state_keys, state_bytes = tonumber(ARGV[11]), tonumber(ARGV[12])
local feed, held = p .. 'feed', p .. 'feed:bytes'
local now = now_ms()
local out, first, added, top, floor = {epoch}, nil, 0, 0, nil
-- Whether `version` may replace what a state room holds for `key` (no version: always).
local function newer(stream, key, version)
  if version == '' then return true end
  local kept = redis.call('HGET', p .. 'state:' .. stream, key)
  if not kept then return true end
  local v = cjson.decode(kept).v
  return v == nil or v == cjson.null or tonumber(version) > v
end
-- Keeps the event as the state room's latest for `key`, within the room's bounds.
local function keep(stream, key, version, offset, event, head)
  local hash, order, bytes = p .. 'state:' .. stream, p .. 'state:order:' .. stream,
    p .. 'state:bytes:' .. stream
  local value = cjson.encode({o = offset, v = version ~= '' and tonumber(version) or nil,
    e = event, h = head})
  local old = redis.call('HGET', hash, key)
  local total = redis.call('INCRBY', bytes, #value - (old and #old or 0))
  redis.call('HSET', hash, key, value)
  redis.call('ZADD', order, offset, key)
  while redis.call('ZCARD', order) > 1 and (redis.call('ZCARD', order) > state_keys or
      total > state_bytes) do
    local oldest = redis.call('ZPOPMIN', order)[1]
    total = redis.call('INCRBY', bytes, -#(redis.call('HGET', hash, oldest) or ''))
    redis.call('HDEL', hash, oldest)
  end
  for _, k in ipairs({hash, order, bytes}) do redis.call('PEXPIRE', k, position_ttl) end
end
local i = 13
while i <= #ARGV do
  local id, rooms, event, head, sent = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2],
    ARGV[i + 3], ARGV[i + 4]
  local key, version = ARGV[i + 5], ARGV[i + 6]
  i = i + 7
  if redis.call('SET', p .. 'seen:' .. id, '1', 'NX', 'EX', ttl) then
    local targets, size, kept = {}, #head, {}
    for r = i, i + 2 * rooms - 1, 2 do
      local state = ARGV[r + 1] == '1'
      if not state or newer(ARGV[r], key, version) then
      local position = p .. 'offset:' .. ARGV[r]
      local offset = redis.call('INCR', position)
      if offset == 1 then  -- a new stream, or one whose position expired
        floor = floor or floor_at(p, now, position_ttl, mark_ms)
        offset = floor + 1
        if offset > 1 then redis.call('SET', position, offset) end
      end
      redis.call('PEXPIRE', position, position_ttl)
      if offset > top then top = offset end
      targets[#targets + 1] = ARGV[r]
      targets[#targets + 1] = offset
      size = size + #ARGV[r] + room_bytes
      if state then keep(ARGV[r], key, version, offset, event, head) end
      end
    end
    if #targets == 0 then
      out[#out + 1] = 2  -- every room it names holds a newer state: nothing to emit
    else
    local fields = {'z', size, 'r', cjson.encode(targets), 'n', redis.call('INCR', p .. 'feed:n'),
      'ep', epoch, 'e', event, 's', sent, 'h', head}
    local entry
    if history_max > 0 then
      entry = redis.call('XADD', feed, '*', unpack(fields))
      for t = 1, #targets, 2 do
        local index = p .. 'history:' .. targets[t]
        redis.call('ZADD', index, targets[t + 1], entry)
        redis.call('ZREMRANGEBYRANK', index, 0, -history_max - 1)
      end
      added = added + size
    else
      entry = redis.call('XADD', feed, 'MAXLEN', '~', feed_max, '*', unpack(fields))
    end
    first = first or entry
    out[#out + 1] = 1
    end
  else
    out[#out + 1] = 0
  end
  i = i + 2 * rooms
end
if top > 0 then
  local highest = math.max(top, tonumber(redis.call('GET', p .. 'offset:max') or '0'))
  redis.call('SET', p .. 'offset:max', highest)
  if redis.call('HSET', p .. 'offset:marks', math.floor(now / mark_ms), highest) == 1 then
    -- a new bucket: forget the marks older than the floor's, which nothing reads again
    local _, best, marks = floor_at(p, now, position_ttl, mark_ms)
    for n = 1, #marks, 2 do
      if best ~= nil and tonumber(marks[n]) < best then
        redis.call('HDEL', p .. 'offset:marks', marks[n])
      end
    end
  end
end
if first and history_max > 0 then
  local oldest_ms = now - window_ms
  local bytes = redis.call('INCRBY', held, added)
  local count = redis.call('XLEN', feed)
  -- A page as long as what was added: at a steady state, what one call trims
  local from, cut, page = '-', nil, #out
  while true do
    local rows = redis.call('XRANGE', feed, from, first, 'COUNT', page)
    local trimmed = 0
    for _, row in ipairs(rows) do
      local ms = tonumber(string.match(row[1], '^(%d+)'))
      if row[1] == first or not (bytes > max_bytes or count > feed_max or ms < oldest_ms) then
        break
      end
      local f = row[2]
      if f[1] == 'z' and f[3] == 'r' then
        bytes = bytes - tonumber(f[2])
        local targets = cjson.decode(f[4])
        for t = 1, #targets, 2 do
          redis.call('ZREMRANGEBYSCORE', p .. 'history:' .. targets[t], '-inf', targets[t + 1])
        end
      end
      count, cut, trimmed = count - 1, row[1], trimmed + 1
    end
    if trimmed < #rows or #rows == 0 then break end
    from = '(' .. cut
  end
  if cut then
    local ms, seq = string.match(cut, '^(%d+)-(%d+)$')
    redis.call('XTRIM', feed, 'MINID', '=', ms .. '-' .. (tonumber(seq) + 1))
    redis.call('SET', held, math.max(0, bytes))
  end
end
return out
