-- Renews a server's lease. ARGV: prefix, server, lease (ms). Returns 1 if it held it, 0 if it
-- had lapsed (the server may have been taken out: it writes all its counts again).
local lease = P .. 'lease:' .. ARGV[2]
redis.call('SADD', P .. 'servers', ARGV[2])
if redis.call('PEXPIRE', lease, ARGV[3]) == 1 then return 1 end
redis.call('SET', lease, '1', 'PX', ARGV[3])
return 0
