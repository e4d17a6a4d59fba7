-- Takes a server whose lease lapsed out: its connections leave every count (each member at 0
-- starts its grace), and it leaves the list of servers. ARGV: prefix, the dead server, grace
-- (ms). Returns how many (scope, user) it held; 0 if its lease is back (it was not dead).
local dead = ARGV[2]
if redis.call('EXISTS', P .. 'lease:' .. dead) == 1 then return 0 end
local srv = P .. 'srv:' .. dead
local held = redis.call('HGETALL', srv)
local now, grace = now_ms(), tonumber(ARGV[3])
for i = 1, #held, 2 do
  local field = held[i]
  local cut = string.find(field, '\n', 1, true)
  add(string.sub(field, 1, cut - 1), string.sub(field, cut + 1), -tonumber(held[i + 1]), '',
    now, grace, false, 0, 0)
end
redis.call('DEL', srv)
redis.call('SREM', P .. 'servers', dead)
return #held / 2
