-- Global SetDescriptor: digest and size overwritten, media type only if absent (HSETNX).
-- KEYS: global hash. ARGV: canonical digest, size, media type.
-- Returns {existed, digest, size, mediatype} read after the write.
local refused = wrong_type(KEYS[1], 'hash')
if refused then
  return refused
end
local before = redis.call('HMGET', KEYS[1], FIELD_DIGEST, FIELD_SIZE)
local existed = 0
if before[1] and before[2] then existed = 1 end
redis.call('HSET', KEYS[1], FIELD_DIGEST, ARGV[1], FIELD_SIZE, ARGV[2])
redis.call('HSETNX', KEYS[1], FIELD_MEDIA_TYPE, ARGV[3])
local after = redis.call('HMGET', KEYS[1], unpack(DESCRIPTOR_FIELDS))
return {existed, after[1], after[2], after[3]}
