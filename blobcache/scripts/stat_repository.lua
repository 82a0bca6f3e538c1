-- Repository-scoped stat in one round trip: membership, global hash, repository override.
-- KEYS: membership set, global hash, repository hash. ARGV: digest.
-- Returns {0} for a non-member, else {1, digest, size, global mediatype, repository mediatype}.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return {0}
end
local fields = redis.call('HMGET', KEYS[2], unpack(DESCRIPTOR_FIELDS))
local override = redis.call('HGET', KEYS[3], FIELD_MEDIA_TYPE)
return {1, fields[1], fields[2], fields[3], override}
