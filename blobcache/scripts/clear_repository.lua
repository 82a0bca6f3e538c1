-- Repository-scoped Clear with registry 3.1+ semantics, check and writes in one atomic step.
-- KEYS: membership set, repository hash, global hash. ARGV: digest.
-- Returns 0 when the digest is not a member (nothing changed), else 1, or 2 when the global
-- entry had descriptor fields too (two entries cleared, as the bulk clears count them).
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'set' then
  return redis.error_reply('BLOBCACHE_CORRUPT ' .. KEYS[1] .. ' holds a ' .. kind)
end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
local global_removed
if redis.call('TYPE', KEYS[3])['ok'] == 'hash' then
  global_removed = redis.call('HDEL', KEYS[3], 'digest', 'size', 'mediatype')
else
  global_removed = redis.call('DEL', KEYS[3])
end
if global_removed > 0 then
  return 2
end
return 1
