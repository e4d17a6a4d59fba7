-- Ends the graces that are over: each member still at 0 connections leaves. ARGV: prefix,
-- events (0/1), outbox max, sequence TTL (s), at most this many. Returns the changes.
local events, outbox_max, seq_ttl = ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', P .. 'pending', '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
for _, field in ipairs(due) do
  redis.call('ZREM', P .. 'pending', field)
  local cut = string.find(field, '\n', 1, true)
  local scope, user = string.sub(field, 1, cut - 1), string.sub(field, cut + 1)
  local count = redis.call('HGET', P .. 'm:' .. scope, user)
  if count ~= false and tonumber(count) == 0 then
    redis.call('HDEL', P .. 'm:' .. scope, user)
    redis.call('HDEL', P .. 'info:' .. scope, user)
    record('leave', scope, user, '', now, events, outbox_max, seq_ttl)
  end
end
return changes
