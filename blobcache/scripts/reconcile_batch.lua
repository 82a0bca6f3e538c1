-- Removes (or for a dry run, inspects) one batch of entries that storage no longer backs, in one
-- atomic step: an interrupted reconciliation never leaves a membership without its repository
-- hash or the reverse, and a dry run answers with exactly what the real run would remove.
-- ARGV[1]: 'clear' or 'count'.
-- ARGV[2]: 'members': KEYS are pairs (membership set, repository hash), ARGV[3..] the digests,
--          one per pair. Each digest leaves its set and its hash is deleted with it.
--          'orphans': the same pairs, but only a hash whose digest is not a member goes; a
--          member has its own batch, decided on its own storage check.
--          'globals': KEYS are global hashes, cleared as the registry's global Clear does.
-- A membership key of another type holds no members here (the walk skips such sets); a hash of
-- another type goes whole, as with every Clear.
-- Returns {sets_deleted, f_1, ..., f_n}: membership sets that existed before and not after, and
-- per entry a bit set: 1 the membership (for 'globals': descriptor fields) was there, 2 the
-- hash key is deleted.
local clear = ARGV[1] == 'clear'
local kind = ARGV[2]
local reply = {0}

if kind == 'globals' then
  for i = 1, #KEYS do
    local entry, gone = global_clear(KEYS[i], clear, true)
    reply[i + 1] = entry + 2 * gone
  end
  return reply
end

local sets = {}
for i = 1, #KEYS / 2 do
  local set_key, hash_key, digest = KEYS[2 * i - 1], KEYS[2 * i], ARGV[i + 2]
  if sets[set_key] == nil then
    sets[set_key] = type_of(set_key) == 'set'
  end
  local member = sets[set_key] and redis.call('SISMEMBER', set_key, digest) == 1
  local flag = 0
  if not (kind == 'orphans' and member) then
    if member then
      flag = 1
      if clear then
        redis.call('SREM', set_key, digest)
      end
    end
    if redis.call('EXISTS', hash_key) == 1 then
      flag = flag + 2
      if clear then
        redis.call('DEL', hash_key)
      end
    end
  end
  reply[i + 1] = flag
end
if clear then
  for set_key, was_set in pairs(sets) do
    if was_set and redis.call('EXISTS', set_key) == 0 then
      reply[1] = reply[1] + 1
    end
  end
end
return reply
