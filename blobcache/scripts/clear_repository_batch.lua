-- Clears (or counts, for a dry run) one batch of repository entries in one atomic step, so that
-- an interrupted bulk clear never leaves a membership without its hash or the reverse. One call
-- may cover several repositories (groups), which saves a script call per repository when a
-- whole-database walk meets hashes of many repositories in one SCAN step.
-- ARGV[1]: 'clear' or 'count'. Clearing always removes each digest's membership and hash
--          together; ARGV[2] says what a dry run counts, depending on how the caller walks:
--          'pairs'     each digest whose membership or hash exists, and the hashes;
--          'hashes'    each hash whose digest is not a member, and the hashes (the walk counts
--                      members where it meets their set);
--          'orphans'   each hash whose digest is not a member, and only those hashes (the
--                      walk already counted the members with their hashes).
-- ARGV[3]: the number of groups G; ARGV[4..3+2G]: per group, its number of digests and its
--          number of extra members.
-- Then per group, in order: its digests (never one twice), then its extra members (set members
-- that are not valid digests: removed with the set, never counted).
-- KEYS, per group: the membership set, then the repository hashes of the group's digests.
-- Returns {entries, keys, f_1, ..., f_n}: the digests whose membership or hash was (would be)
-- removed, the keys that existed before and not after, and per digest (all groups in order) 1
-- if it was one of the entries. In 'count' mode the membership set itself is not counted: only
-- the caller knows whether its last member is in this batch.
local clear = ARGV[1] == 'clear'
local kind = ARGV[2]
local groups = tonumber(ARGV[3])
local entries, deleted = 0, 0
local reply = {0, 0}
local key_at, arg_at = 1, 4 + 2 * groups

-- Variadic calls take at most this many arguments: Lua's unpack is bounded by its C stack.
local chunk = 1000

for g = 1, groups do
  local digests = tonumber(ARGV[2 + 2 * g])
  local extras = tonumber(ARGV[3 + 2 * g])
  local set_key = KEYS[key_at]
  -- A membership key of another type (a corrupt entry) is treated as no membership; the caller
  -- deletes it on its own.
  local is_set = redis.call('TYPE', set_key)['ok'] == 'set'
  -- Membership of the whole group in one call per chunk, then (clearing) one SREM per chunk:
  -- a call per digest would double the script's cost. The caller never repeats a digest in a
  -- group, so the flags read first stay true for the whole group.
  local members = {}
  if is_set then
    for first = 0, digests - 1, chunk do
      local last = math.min(first + chunk, digests) - 1
      local flags = redis.call('SMISMEMBER', set_key, unpack(ARGV, arg_at + first, arg_at + last))
      for k = 1, #flags do
        members[first + k] = flags[k] == 1
      end
      if clear then
        redis.call('SREM', set_key, unpack(ARGV, arg_at + first, arg_at + last))
      end
    end
  end
  for i = 1, digests do
    local hash_key = KEYS[key_at + i]
    local member = members[i] or false
    local existed
    if clear then
      existed = redis.call('DEL', hash_key) == 1
    else
      existed = redis.call('EXISTS', hash_key) == 1
    end
    local flag = 0
    if clear or kind == 'pairs' then
      if member or existed then
        flag = 1
      end
    elseif existed and not member then
      flag = 1
    end
    if existed and (clear or kind ~= 'orphans' or not member) then
      deleted = deleted + 1
    end
    entries = entries + flag
    reply[#reply + 1] = flag
  end
  if clear and is_set then
    for first = arg_at + digests, arg_at + digests + extras - 1, chunk do
      local last = math.min(first + chunk, arg_at + digests + extras) - 1
      redis.call('SREM', set_key, unpack(ARGV, first, last))
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
