"""Server-side Lua, one file per operation, read once at import."""

from __future__ import annotations

from importlib.resources import files


def load(name: str) -> str:
    return (files(__package__) / f"{name}.lua").read_text(encoding="utf-8")
