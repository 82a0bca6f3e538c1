-- Shared by every script (blobcache.scripts prepends it, after the field names).

local function type_of(key)
  return redis.call('TYPE', key)['ok']
end

-- The error reply for a key holding another type than `expected` (nil when it is absent or of
-- that type), then the key's type. Checked before any write: a script is not rolled back by a
-- failing command.
local function wrong_type(key, expected)
  local kind = type_of(key)
  if kind ~= 'none' and kind ~= expected then
    return redis.error_reply('BLOBCACHE_CORRUPT ' .. key .. ' holds a ' .. kind), kind
  end
  return nil, kind
end

-- The registry's global Clear: HDEL of the descriptor fields (other fields, such as a legacy
-- `length`, stay), unknown when none was there. A key of another type at this name is a corrupt
-- entry and is removed whole.
-- With `clear` false nothing changes and the reply says what the clear would do. Returns 1 when
-- there was an entry to clear (else 0) and, with `count_keys`, 1 when the key is (would be) gone
-- after; without `count_keys` a clear sends nothing but TYPE and HDEL (or DEL).
local function global_clear(key, clear, count_keys)
  local kind = type_of(key)
  if kind == 'none' then
    return 0, 0
  end
  if kind ~= 'hash' then
    if clear then
      redis.call('DEL', key)
    end
    return 1, 1
  end
  if clear and not count_keys then
    if redis.call('HDEL', key, unpack(DESCRIPTOR_FIELDS)) > 0 then
      return 1, 0
    end
    return 0, 0
  end
  local present = 0
  for _, field in ipairs(DESCRIPTOR_FIELDS) do
    present = present + redis.call('HEXISTS', key, field)
  end
  if present == 0 then
    return 0, 0
  end
  local gone = 0
  if redis.call('HLEN', key) == present then
    gone = 1
  end
  if clear then
    redis.call('HDEL', key, unpack(DESCRIPTOR_FIELDS))
  end
  return 1, gone
end

