-- Clears (or counts, for a dry run) one batch of a repository's entries in one atomic step, so
-- that an interrupted bulk clear never leaves a membership without its hash or the reverse.
-- KEYS[1]: the membership set; KEYS[2..n+1]: the repository hashes of the digests ARGV[3..n+2].
-- ARGV[1]: 'clear' or 'count'.
-- ARGV[2]: 'pairs' removes each digest's membership and hash together;
--          'orphans' removes only hashes whose digest is not a member (a member re-added
--          meanwhile keeps its hash);
--          'hashes' clears like 'pairs', but counts an entry only for a hash whose digest is not
--          a member: a whole-database dry run counts members when it meets their set.
-- ARGV[n+3..]: set members that are not valid digests: removed with the set, never counted.
-- Returns {entries, keys, e_1, ..., e_n}: the digests whose membership or hash was (would be)
-- removed, the keys that existed before and not after, and per digest 1 if it was one of the
-- entries. In 'count' mode the membership set itself is not counted: only the caller knows
-- whether its last member is in this batch.
local clear = ARGV[1] == 'clear'
local kind = ARGV[2]
local set_key = KEYS[1]
local digests = #KEYS - 1
-- A membership key of another type (a corrupt entry) is treated as no membership; the caller
-- deletes it on its own.
local is_set = redis.call('TYPE', set_key)['ok'] == 'set'
local removes_members = clear and kind ~= 'orphans'
local entries, deleted = 0, 0
local flags = {}
for i = 1, digests do
  local digest = ARGV[i + 2]
  local hash_key = KEYS[i + 1]
  local member = false
  if is_set then
    if removes_members then
      member = redis.call('SREM', set_key, digest) == 1
    else
      member = redis.call('SISMEMBER', set_key, digest) == 1
    end
  end
  local flag = 0
  if not (kind == 'orphans' and member) then
    local existed
    if clear then
      existed = redis.call('DEL', hash_key) == 1
    else
      existed = redis.call('EXISTS', hash_key) == 1
    end
    if existed then
      deleted = deleted + 1
    end
    if member or existed then
      flag = 1
    end
    if member and kind == 'hashes' and not clear then
      flag = 0
    end
  end
  entries = entries + flag
  flags[i] = flag
end
if removes_members and is_set then
  for j = digests + 3, #ARGV do
    redis.call('SREM', set_key, ARGV[j])
  end
  if redis.call('EXISTS', set_key) == 0 then
    deleted = deleted + 1
  end
end
local reply = {entries, deleted}
for i = 1, digests do
  reply[i + 2] = flags[i]
end
return reply
