-- Clears (or counts, for a dry run) one batch of repository entries in one atomic step, so that
-- an interrupted bulk clear never leaves a membership without its hash or the reverse. One call
-- may cover several repositories (groups), which saves a script call per repository when a
-- whole-database walk meets hashes of many repositories in one SCAN step.
-- ARGV[1]: 'clear' or 'count'.
-- ARGV[2]: 'pairs' removes each digest's membership and hash together;
--          'orphans' removes only hashes whose digest is not a member (a member re-added
--          meanwhile keeps its hash);
--          'hashes' clears like 'pairs', but a dry run counts an entry only for a hash whose
--          digest is not a member: a whole-database dry run counts members when it meets their
--          set.
-- ARGV[3]: the number of groups G; ARGV[4..3+2G]: per group, its number of digests and its
--          number of extra members.
-- Then per group, in order: its digests, then its extra members (set members that are not valid
-- digests: removed with the set, never counted).
-- KEYS, per group: the membership set, then the repository hashes of the group's digests.
-- Returns {entries, keys, f_1, ..., f_n}: the digests whose membership or hash was (would be)
-- removed, the keys that existed before and not after, and per digest (all groups in order) 1
-- if it was one of the entries. In 'count' mode the membership set itself is not counted: only
-- the caller knows whether its last member is in this batch.
local clear = ARGV[1] == 'clear'
local kind = ARGV[2]
local groups = tonumber(ARGV[3])
local removes_members = clear and kind ~= 'orphans'
local entries, deleted = 0, 0
local reply = {0, 0}
local key_at, arg_at = 1, 4 + 2 * groups

for g = 1, groups do
  local digests = tonumber(ARGV[2 + 2 * g])
  local extras = tonumber(ARGV[3 + 2 * g])
  local set_key = KEYS[key_at]
  -- A membership key of another type (a corrupt entry) is treated as no membership; the caller
  -- deletes it on its own.
  local is_set = redis.call('TYPE', set_key)['ok'] == 'set'
  for i = 1, digests do
    local digest = ARGV[arg_at + i - 1]
    local hash_key = KEYS[key_at + i]
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
    reply[#reply + 1] = flag
  end
  if removes_members and is_set then
    for j = arg_at + digests, arg_at + digests + extras - 1 do
      redis.call('SREM', set_key, ARGV[j])
    end
    if redis.call('EXISTS', set_key) == 0 then
      deleted = deleted + 1
    end
  end
  key_at = key_at + 1 + digests
  arg_at = arg_at + digests + extras
end
reply[1] = entries
reply[2] = deleted
return reply
