-- Global Clear with 3.x semantics: returns 1 when there was an entry to clear, 0 when unknown.
-- KEYS: global hash.
return (global_clear(KEYS[1], true, false))
