-- Global SetDescriptor: digest and size overwritten, media type only if absent (HSETNX).
-- KEYS: global hash. ARGV: canonical digest, size, media type.
-- Returns {existed, digest, size, mediatype} read after the write.
-- The type check comes before any write: a script is not rolled back by a failing command.
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'hash' then
  return redis.error_reply('BLOBCACHE_CORRUPT ' .. KEYS[1] .. ' holds a ' .. kind)
end
local before = redis.call('HMGET', KEYS[1], 'digest', 'size')
local existed = 0
if before[1] and before[2] then existed = 1 end
redis.call('HSET', KEYS[1], 'digest', ARGV[1], 'size', ARGV[2])
redis.call('HSETNX', KEYS[1], 'mediatype', ARGV[3])
local after = redis.call('HMGET', KEYS[1], 'digest', 'size', 'mediatype')
return {existed, after[1], after[2], after[3]}
