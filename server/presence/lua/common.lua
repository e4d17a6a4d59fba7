-- Shared by every presence script (prepended). ARGV[1] is the key prefix (REDIS_PREFIX plus
-- ':presence:'). Keys: m:<scope> (user -> connections over every server, 0 while within a
-- leave's grace), info:<scope> (user -> public info), pending (sorted set "<scope>\n<user>"
-- -> when its grace ends, ms), srv:<server> (this server's "<scope>\n<user>" -> its
-- connections), lease:<server>, servers (every server that has registered), seq:<user>,
-- outbox (a stream of backend events), outbox:dropped (events the full outbox refused).
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local changes = {}
-- A join or leave: returned to the caller (its members are told) and, with events on, put in
-- the outbox with the user's next sequence number (counted even when the outbox is full: the
-- backend sees the gap).
local function record(kind, scope, user, info, now, events, outbox_max, seq_ttl)
  changes[#changes + 1] = kind
  changes[#changes + 1] = scope
  changes[#changes + 1] = user
  changes[#changes + 1] = info or ''
  if not events then return end
  local seq_key = P .. 'seq:' .. user
  local seq = redis.call('INCR', seq_key)
  redis.call('EXPIRE', seq_key, seq_ttl)
  if redis.call('XLEN', P .. 'outbox') >= outbox_max then
    redis.call('INCR', P .. 'outbox:dropped')
    return
  end
  local body = {user = user, seq = seq, at = now}
  if scope == '~' then
    body['type'] = kind == 'join' and 'user_online' or 'user_offline'
  else
    -- '<len(namespace)>:<namespace><room>', the length in characters (Python's len), which
    -- string.sub counts in bytes: walk that many UTF-8 characters
    local colon = string.find(scope, ':', 1, true)
    local stop = colon + 1
    for _ = 1, tonumber(string.sub(scope, 1, colon - 1)) do
      local byte = string.byte(scope, stop) or 0
      stop = stop + (byte >= 240 and 4 or byte >= 224 and 3 or byte >= 192 and 2 or 1)
    end
    body['type'] = kind == 'join' and 'room_join' or 'room_leave'
    body['namespace'] = string.sub(scope, colon + 1, stop - 1)
    body['room'] = string.sub(scope, stop)
  end
  redis.call('XADD', P .. 'outbox', '*', 'u', user, 's', seq, 'b', cjson.encode(body))
end
-- Adds `delta` to a member's count over every server: a join if it was no member, the end of
-- a grace if it was within one, the start of one if it reached 0.
local function add(scope, user, delta, info, now, grace, events, outbox_max, seq_ttl)
  local members = P .. 'm:' .. scope
  local before = redis.call('HGET', members, user)
  local field = scope .. '\n' .. user
  if before == false then
    if delta <= 0 then return end
    redis.call('HSET', members, user, delta)
    if info ~= '' then redis.call('HSET', P .. 'info:' .. scope, user, info) end
    record('join', scope, user, info, now, events, outbox_max, seq_ttl)
    return
  end
  before = tonumber(before)
  local total = before + delta
  if total < 0 then total = 0 end
  redis.call('HSET', members, user, total)
  if info ~= '' and delta > 0 then redis.call('HSET', P .. 'info:' .. scope, user, info) end
  if before == 0 and total > 0 then
    redis.call('ZREM', P .. 'pending', field)
  elseif before > 0 and total == 0 then
    redis.call('ZADD', P .. 'pending', now + grace, field)
  end
end
