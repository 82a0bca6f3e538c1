"""The Lua sources: each rule written once (the prelude), field names from ``keys``, read once."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from blobcache import keys, scripts

SCRIPT_NAMES = sorted(
    path.name.removesuffix(".lua")
    for path in files(scripts).iterdir()
    if path.name.endswith(".lua") and path.name != "prelude.lua"
)


def source(name: str) -> str:
    return (files(scripts) / f"{name}.lua").read_text(encoding="utf-8")


def test_every_script_is_sent_with_the_field_names_of_keys_and_the_prelude() -> None:
    digest, size, media_type = keys.DESCRIPTOR_FIELDS
    head = (
        "local FIELD_DIGEST, FIELD_SIZE, FIELD_MEDIA_TYPE = "
        f"'{digest}', '{size}', '{media_type}'\n"
        f"local DESCRIPTOR_FIELDS = {{'{digest}', '{size}', '{media_type}'}}\n"
    )
    for name in SCRIPT_NAMES:
        assert scripts.load(name) == head + source("prelude") + source(name)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_no_script_spells_a_field_name_or_the_global_clear_itself(name: str) -> None:
    text = source(name)
    quoted = re.findall(r"'([a-z]+)'", text)
    assert set(quoted) & set(keys.DESCRIPTOR_FIELDS) == set()
    # The registry's global Clear (HDEL of the descriptor fields) lives in the prelude only.
    assert "HDEL" not in text


def test_scripts_are_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    read = scripts._read

    def counting(name: str) -> str:
        reads.append(name)
        return read(name)

    monkeypatch.setattr(scripts, "_read", counting)
    scripts.load.cache_clear()
    scripts.prelude.cache_clear()
    try:
        first = [scripts.load(name) for name in SCRIPT_NAMES]
        again = [scripts.load(name) for name in SCRIPT_NAMES]
    finally:
        scripts.load.cache_clear()
        scripts.prelude.cache_clear()
    assert first == again
    assert sorted(reads) == sorted(["prelude", *SCRIPT_NAMES])
