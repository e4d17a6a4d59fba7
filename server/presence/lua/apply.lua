-- A server's connections per (scope, user), as absolute counts: the difference from what it
-- last wrote is added to the members' counts, so that applying the same counts twice (a retry
-- after Redis timed out) changes nothing. ARGV: prefix, server, grace (ms), events (0/1),
-- outbox max, sequence TTL (s), then per member: scope, user, count, info ('' for none).
-- Returns the changes, four values each: kind, scope, user, info.
local srv = P .. 'srv:' .. ARGV[2]
-- Listed among the servers whenever it writes: if it was taken out a moment ago, what it
-- writes now is taken out too should it die before its next renewal.
redis.call('SADD', P .. 'servers', ARGV[2])
local grace, events = tonumber(ARGV[3]), ARGV[4] == '1'
local outbox_max, seq_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
for i = 7, #ARGV, 4 do
  local scope, user, count, info = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local field = scope .. '\n' .. user
  local old = tonumber(redis.call('HGET', srv, field) or '0')
  if count ~= old then
    if count == 0 then redis.call('HDEL', srv, field) else redis.call('HSET', srv, field, count) end
    add(scope, user, count - old, info, now, grace, events, outbox_max, seq_ttl)
  end
end
return changes
