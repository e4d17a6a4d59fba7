-- Takes or keeps the sender's lease: one server at a time sends the outbox, so that each
-- user's events reach SQS in order. ARGV: prefix, server, lease (ms). Returns 1 if held.
local key = P .. 'sender'
local holder = redis.call('GET', key)
if holder == ARGV[2] then
  redis.call('PEXPIRE', key, ARGV[3])
  return 1
end
if holder == false then
  redis.call('SET', key, ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
