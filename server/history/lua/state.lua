-- A state room's latest events, in one consistent view with its position. ARGV: prefix, epoch
-- candidate, stream, the room as JSON, position TTL (ms), mark bucket (ms). Returns epoch, the
-- stream's last offset, the feed's last ID, then offset, event, payload of each latest event,
-- oldest first (append.lua keeps them).
-- (positions.lua is prepended: now_ms, floor_at)
local p, key, room = ARGV[1], ARGV[3], ARGV[4]
local epoch = redis.call('SET', p .. 'epoch', ARGV[2], 'NX', 'GET') or ARGV[2]
local last = tonumber(redis.call('GET', p .. 'offset:' .. key) or '-1')
if last < 0 then last = floor_at(p, now_ms(), tonumber(ARGV[5]), tonumber(ARGV[6])) end
local tip = redis.call('XREVRANGE', p .. 'feed', '+', '-', 'COUNT', 1)
local out = {epoch, last, tip[1] and tip[1][1] or '0-0'}
local hash = p .. 'state:' .. key
for _, name in ipairs(redis.call('ZRANGE', p .. 'state:order:' .. key, 0, -1)) do
  local kept = redis.call('HGET', hash, name)
  if kept then
    local s = cjson.decode(kept)
    out[#out + 1] = s.o
    out[#out + 1] = s.e
    out[#out + 1] = s.h .. ',"room":' .. room .. ',"offset":' .. s.o .. ',"epoch":"' .. epoch ..
      '"}'
  end
end
return out
