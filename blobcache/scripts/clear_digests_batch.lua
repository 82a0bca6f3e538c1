-- Clears (or counts, for a dry run) a batch of digests in one atomic step, with the semantics of
-- one Clear call per digest: global (3.x) or repository-scoped (3.1+).
-- ARGV[1]: 'clear' or 'count'. ARGV[2]: 'global' or 'repository'.
-- 'global':     KEYS = the global hashes.
-- 'repository': KEYS[1] = the membership set, then per digest its repository hash and its global
--               hash; ARGV[3..] = the digests. A digest that is not a member is unknown and
--               nothing of it changes, as in the registry 3.1+.
-- Returns {keys, members, e_1, ..., e_n}: keys that existed before and not after, members
-- removed, and per digest the descriptor entries cleared (0 = unknown blob). The same code path
-- runs in both modes, so a dry run reports exactly what the real run would.
local clear = ARGV[1] == 'clear'
local deleted, members = 0, 0
local reply = {0, 0}

local function cleared_globally(key)
  local entry, gone = global_clear(key, clear, true)
  deleted = deleted + gone
  return entry
end

if ARGV[2] == 'global' then
  for i = 1, #KEYS do
    reply[i + 2] = cleared_globally(KEYS[i])
  end
else
  local set_key = KEYS[1]
  local refused, kind = wrong_type(set_key, 'set')
  if refused then
    return refused
  end
  for i = 3, #ARGV do
    local entries = 0
    if kind == 'set' and redis.call('SISMEMBER', set_key, ARGV[i]) == 1 then
      local hash_key = KEYS[2 * (i - 3) + 2]
      local global_key = KEYS[2 * (i - 3) + 3]
      entries = 1 + cleared_globally(global_key)
      if redis.call('EXISTS', hash_key) == 1 then
        deleted = deleted + 1
      end
      if clear then
        redis.call('SREM', set_key, ARGV[i])
        redis.call('DEL', hash_key)
      end
      members = members + 1
    end
    reply[i] = entries
  end
  if clear and kind == 'set' and redis.call('EXISTS', set_key) == 0 then
    deleted = deleted + 1
  end
end
reply[1] = deleted
reply[2] = members
return reply
