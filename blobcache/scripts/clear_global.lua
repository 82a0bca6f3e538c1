-- Global Clear with 3.x semantics: returns the number of descriptor fields removed (0 = unknown).
-- KEYS: global hash. A key of another type at this name is a corrupt entry: it is removed.
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then
  return 0
end
if kind ~= 'hash' then
  return redis.call('DEL', KEYS[1])
end
return redis.call('HDEL', KEYS[1], 'digest', 'size', 'mediatype')
