-- Clears (or counts, for a dry run) one batch of a repository's entries in one atomic step, so
-- that an interrupted bulk clear never leaves a membership without its hash or the reverse.
-- KEYS[1]: the membership set; KEYS[2..n+1]: the repository hashes of the digests ARGV[3..n+2].
-- ARGV[1]: 'clear' or 'count'.
-- ARGV[2]: 'pairs' removes each digest's membership and hash together; 'orphans' removes only
--          hashes whose digest is not a member (a member re-added meanwhile keeps its hash).
-- ARGV[n+3..]: set members that are not valid digests: removed with the set, never counted.
-- Returns {entries, keys}: digests whose membership or hash was (would be) removed, and keys that
-- existed before and not after. In 'count' mode the membership set itself is not counted: only
-- the caller knows whether its last member is in this batch.
local clear = ARGV[1] == 'clear'
local orphans_only = ARGV[2] == 'orphans'
local set_key = KEYS[1]
local digests = #KEYS - 1
-- A membership key of another type (a corrupt entry) is treated as no membership; the caller
-- deletes it on its own.
local is_set = redis.call('TYPE', set_key)['ok'] == 'set'
local entries, deleted = 0, 0
for i = 1, digests do
  local digest = ARGV[i + 2]
  local hash_key = KEYS[i + 1]
  local member = false
  if is_set then
    if clear and not orphans_only then
      member = redis.call('SREM', set_key, digest) == 1
    else
      member = redis.call('SISMEMBER', set_key, digest) == 1
    end
  end
  if not (orphans_only and member) then
    local existed
    if clear then
      existed = redis.call('DEL', hash_key) == 1
    else
      existed = redis.call('EXISTS', hash_key) == 1
    end
    if member or existed then
      entries = entries + 1
    end
    if existed then
      deleted = deleted + 1
    end
  end
end
if clear and is_set and not orphans_only then
  for j = digests + 3, #ARGV do
    redis.call('SREM', set_key, ARGV[j])
  end
  if redis.call('EXISTS', set_key) == 0 then
    deleted = deleted + 1
  end
end
return {entries, deleted}
