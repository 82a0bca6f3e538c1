"""Server-side Lua, one file per operation, each read once per process.

Every script is sent with ``prelude.lua`` in front of it: the field names (from
:data:`blobcache.keys.DESCRIPTOR_FIELDS`, so Lua and Python cannot disagree), the type checks and
the registry's global Clear live there once instead of in each script.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from blobcache import keys


def _lua_string(text: str) -> str:
    # The field names are plain ASCII words; refuse anything that would need escaping.
    if not text.isidentifier():
        raise ValueError(f"{text!r} cannot be a Lua string literal here")
    return f"'{text}'"


def _field_names() -> str:
    digest, size, media_type = keys.DESCRIPTOR_FIELDS
    listed = ", ".join(_lua_string(name) for name in keys.DESCRIPTOR_FIELDS)
    return (
        f"local FIELD_DIGEST, FIELD_SIZE, FIELD_MEDIA_TYPE = "
        f"{_lua_string(digest)}, {_lua_string(size)}, {_lua_string(media_type)}\n"
        f"local DESCRIPTOR_FIELDS = {{{listed}}}\n"
    )


def _read(name: str) -> str:
    return (files(__package__) / f"{name}.lua").read_text(encoding="utf-8")


@cache
def prelude() -> str:
    """What every script starts with: the field names, then ``prelude.lua``."""
    return _field_names() + _read("prelude")


@cache
def load(name: str) -> str:
    """The script ``name`` as sent to Redis: the prelude, then the script's own file."""
    return prelude() + _read(name)
