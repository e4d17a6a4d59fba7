-- What a resume needs, in one consistent view. ARGV: prefix, epoch candidate, stream, after
-- (-1: nothing to replay), max bytes, walk step, the room as JSON, window (ms), position TTL
-- (ms), mark bucket (ms). A stream without a position starts from the floor. Returns epoch,
-- the stream's last offset, the feed's last ID, a status (ok, ahead, gone, big), then offset,
-- event, payload of each missed entry, newest first. A stream's index (a sorted set, offset
-- -> feed ID) names the feed entries that hold its events: one the feed no longer holds, or
-- older than the window, is out of the history.
-- (positions.lua is prepended: now_ms, floor_at)
local p, key = ARGV[1], ARGV[3]
local epoch = redis.call('SET', p .. 'epoch', ARGV[2], 'NX', 'GET') or ARGV[2]
local after, max_bytes, walk, room = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  ARGV[7]
local feed = p .. 'feed'
local now = now_ms()
local last = tonumber(redis.call('GET', p .. 'offset:' .. key) or '-1')
if last < 0 then last = floor_at(p, now, tonumber(ARGV[9]), tonumber(ARGV[10])) end
local tip = redis.call('XREVRANGE', feed, '+', '-', 'COUNT', 1)
local head = {epoch, last, tip[1] and tip[1][1] or '0-0'}
if after < 0 then head[4] = 'ok'; return head end
if after > last then head[4] = 'ahead'; return head end
local oldest_ms = now - tonumber(ARGV[8])
local out, bytes, top, oldest, lost = {}, 0, '+inf', last + 1, false
local index = p .. 'history:' .. key
while not lost do
  local rows = redis.call('ZRANGE', index, top, '(' .. after, 'BYSCORE', 'REV', 'LIMIT', 0,
    walk, 'WITHSCORES')
  for n = 1, #rows, 2 do
    local id, offset = rows[n], tonumber(rows[n + 1])
    local event = nil
    if tonumber(string.match(id, '^(%d+)')) >= oldest_ms then
      event = redis.call('XRANGE', feed, id, id)[1]
    end
    if not event then lost = true; break end
    local f = {}
    for k = 1, #event[2], 2 do f[event[2][k]] = event[2][k + 1] end
    local payload = f.h .. ',"room":' .. room .. ',"offset":' .. rows[n + 1] .. ',"epoch":"' ..
      epoch .. '"}'
    bytes = bytes + #payload
    if bytes > max_bytes then head[4] = 'big'; return head end
    out[#out + 1] = offset; out[#out + 1] = f.e; out[#out + 1] = payload
    oldest, top = offset, '(' .. rows[n + 1]
  end
  if #rows < 2 * walk then break end
end
head[4] = oldest == after + 1 and 'ok' or 'gone'
for _, v in ipairs(out) do head[#head + 1] = v end
return head
