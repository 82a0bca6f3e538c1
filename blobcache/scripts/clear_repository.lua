-- Repository-scoped Clear with registry 3.1+ semantics, check and writes in one atomic step.
-- KEYS: membership set, repository hash, global hash. ARGV: digest.
-- Returns 0 when the digest is not a member (nothing changed), else 1, or 2 when the global
-- entry had descriptor fields too (two entries cleared, as the bulk clears count them).
local refused = wrong_type(KEYS[1], 'set')
if refused then
  return refused
end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1 + global_clear(KEYS[3], true, false)
