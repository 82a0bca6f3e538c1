-- Repository-scoped SetDescriptor, all writes or none.
-- KEYS: membership set, global hash, repository hash, and for an alias write also the
--       canonical digest's global hash and repository hash.
-- ARGV: key digest, canonical digest, size, media type.
-- Returns {existed, digest, size, global mediatype, repository mediatype} for the key digest,
-- where existed says whether a stat would have hit just before the write.
local expected = {'set', 'hash', 'hash', 'hash', 'hash'}
for i = 1, #KEYS do
  local refused = wrong_type(KEYS[i], expected[i])
  if refused then
    return refused
  end
end
local existed = 0
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  local before = redis.call('HMGET', KEYS[2], FIELD_DIGEST, FIELD_SIZE)
  if before[1] and before[2] and redis.call('HEXISTS', KEYS[3], FIELD_MEDIA_TYPE) == 1 then
    existed = 1
  end
end
local function write(digest, global_key, repository_key)
  redis.call('SADD', KEYS[1], digest)
  redis.call('HSET', global_key, FIELD_DIGEST, ARGV[2], FIELD_SIZE, ARGV[3])
  redis.call('HSETNX', global_key, FIELD_MEDIA_TYPE, ARGV[4])
  redis.call('HSET', repository_key, FIELD_MEDIA_TYPE, ARGV[4])
end
write(ARGV[1], KEYS[2], KEYS[3])
if #KEYS == 5 then
  write(ARGV[2], KEYS[4], KEYS[5])
end
local after = redis.call('HMGET', KEYS[2], unpack(DESCRIPTOR_FIELDS))
return {existed, after[1], after[2], after[3], ARGV[4]}
