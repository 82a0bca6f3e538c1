"""Bulk operations over the registry's cache: whole-scope clears, batch clears and statistics.

Shared by the management commands and the REST API. Everything here walks Redis with cursors
(SCAN, SSCAN) and works in batches, so memory stays bounded whatever the size of the database.
Each batch of writes is one atomic script that removes a digest's membership and repository hash
together: an interrupted run leaves every entry either fully cleared or untouched, and running it
again finishes the job. A ``KeyboardInterrupt`` (Ctrl-C, or a SIGTERM handler that raises one) is
held back while a batch is in flight and honoured between batches, so the counts in the returned
:class:`ClearResult` are exact even for an interrupted run.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from blobcache import keys, scripts, signals
from blobcache.cache import DescriptorCache, translate_redis_errors
from blobcache.digest import validate_digest
from blobcache.exceptions import DigestInvalid
from blobcache.reference import validate_repository_name

Progress = Callable[[int], None]

#: SCAN work per call when sweeping the keyspace for one repository's orphaned hashes. Larger
#: than a write batch because most keys scanned are not returned: fewer round trips, and each
#: call still takes the server about a millisecond.
SWEEP_SCAN_COUNT = 10_000

_CLEAR = "clear"
_COUNT = "count"
_PAIRS = "pairs"
_ORPHANS = "orphans"


@dataclass(frozen=True)
class ClearResult:
    """What a clear removed, or for a dry run what it would remove.

    ``cleared`` counts descriptor entries: a global entry is one, and each repository's entry for
    a digest (its membership and/or its repository hash) is one. ``keys_deleted`` counts Redis
    keys that existed before and not after. ``unknown`` counts requested digests that had no
    entry at all (only the digest-list clears set it).
    """

    cleared: int
    keys_deleted: int
    dry_run: bool
    interrupted: bool = False
    unknown: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The summary the commands print: ``interrupted`` appears only when it is true."""
        summary: dict[str, Any] = {
            "cleared": self.cleared,
            "keys_deleted": self.keys_deleted,
            "dry_run": self.dry_run,
        }
        if self.interrupted:
            summary["interrupted"] = True
        return summary


class _Tally:
    def __init__(self) -> None:
        self.cleared = 0
        self.keys_deleted = 0
        self.unknown = 0

    def add(self, cleared: int, keys_deleted: int) -> None:
        self.cleared += int(cleared)
        self.keys_deleted += int(keys_deleted)

    def result(self, dry_run: bool, interrupted: bool) -> ClearResult:
        return ClearResult(
            self.cleared, self.keys_deleted, dry_run, interrupted, unknown=self.unknown
        )


# --- interrupt handling --------------------------------------------------------------------------

_SHIELDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _shielded() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while one batch is sent and its reply read.

    Without this, Ctrl-C between sending a script and reading its reply would lose the batch's
    counts (the server still runs the script to the end). The signal is re-raised as soon as the
    batch is done, to whatever handler the caller had installed. Signal handlers can only be
    changed from the main thread; elsewhere (a WSGI worker thread) signals never arrive anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def remember(signum: int, frame: Any) -> None:
        pending.append(signum)

    previous = {signum: signal.signal(signum, remember) for signum in _SHIELDED_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:
            signal.raise_signal(pending[0])


# --- key names -----------------------------------------------------------------------------------

_GLOB_SPECIAL = re.compile(r"([\\\[\]*?])")


def glob_escape(text: str) -> str:
    """Escape SCAN MATCH metacharacters: IPv6 domains put ``[`` and ``]`` in repository names."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def _text(value: Any) -> str:
    # Latin-1 never fails; a non-ASCII key then simply fails the (ASCII-only) grammars.
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _is_valid_digest(text: str) -> bool:
    try:
        validate_digest(text)
    except DigestInvalid:
        return False
    return True


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")


# --- one run -------------------------------------------------------------------------------------


class _Run:
    """The state of one bulk operation: client, scripts, mode, counts."""

    def __init__(
        self,
        cache: DescriptorCache,
        *,
        dry_run: bool,
        batch_size: int,
        progress: Progress | None,
    ) -> None:
        _check_batch_size(batch_size)
        self.client = cache.client
        self.dry_run = dry_run
        self.mode = _COUNT if dry_run else _CLEAR
        self.batch_size = batch_size
        self.progress = progress
        self.tally = _Tally()
        self.clear_repository_batch = self.client.register_script(
            scripts.load("clear_repository_batch")
        )

    def advance(self, done: int) -> None:
        if self.progress is not None and done:
            self.progress(done)

    def key_type(self, key: str) -> str:
        return _text(self.client.type(key))

    def repository_batch(
        self,
        repository: str,
        digests: Sequence[str],
        kind: str,
        extra_members: Sequence[Any] = (),
    ) -> None:
        """Run one atomic batch over ``digests`` of ``repository`` and add its counts."""
        if not digests and not extra_members:
            return
        batch_keys = [keys.membership_key(repository)]
        batch_keys += [keys.repository_key(repository, digest) for digest in digests]
        with _shielded():
            entries, deleted = self.clear_repository_batch(
                keys=batch_keys, args=[self.mode, kind, *digests, *extra_members]
            )
        self.tally.add(entries, deleted)

    def delete_corrupt(self, key: str) -> None:
        """A layout key of the wrong type is a corrupt entry: it goes, as the global clear does."""
        if self.dry_run:
            self.tally.add(0, 1)
            return
        with _shielded():
            deleted = self.client.delete(key)
        self.tally.add(0, deleted)

    def repository_members(self, repository: str, *, report: bool) -> None:
        """Clear every member of ``repository`` with its hash, walking the set with SSCAN."""
        membership = keys.membership_key(repository)
        kind = self.key_type(membership)
        if kind == "none":
            return
        if kind != "set":
            self.delete_corrupt(membership)
            return
        if self.dry_run:
            # The real run deletes the set with its last member; count it once here.
            self.tally.add(0, 1)
        cursor = 0
        while True:
            cursor, members = self.client.sscan(membership, cursor, count=self.batch_size)
            # COUNT is only a hint (a small set comes back whole): cut to the batch size.
            for batch in _batches(members, self.batch_size):
                valid: list[str] = []
                invalid: list[Any] = []
                for member in batch:
                    text = _text(member)
                    if _is_valid_digest(text):
                        valid.append(text)
                    else:
                        invalid.append(member)
                self.repository_batch(repository, valid, _PAIRS, invalid)
                if report:
                    self.advance(len(batch))
            if int(cursor) == 0:
                return

    def repository_orphans(self, repository: str) -> None:
        """Clear the repository hashes that have no membership (left by older registries)."""
        prefix = keys.repository_key(repository, "")
        pattern = keys.repository_key(glob_escape(repository), "*")
        count = max(self.batch_size, SWEEP_SCAN_COUNT)
        cursor = 0
        while True:
            cursor, found = self.client.scan(cursor, match=pattern, count=count)
            digests = []
            for key in found:
                text = _text(key)
                digest = text[len(prefix) :]
                # The pattern's ``*`` also matches longer suffixes: only a valid digest counts.
                if text.startswith(prefix) and _is_valid_digest(digest):
                    digests.append(digest)
            for batch in _batches(digests, self.batch_size):
                self.repository_batch(repository, batch, _ORPHANS)
            if int(cursor) == 0:
                return


def clear_repository_scope(
    cache: DescriptorCache,
    repository: str,
    *,
    dry_run: bool = False,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> ClearResult:
    """Clear a whole repository scope: its membership set and every repository hash.

    Global entries stay. The set is walked with SSCAN, so the writes grow with the repository,
    not with the database; repository hashes without membership (older registries left them) are
    then found by one SCAN MATCH sweep and removed too. An unknown repository clears nothing.
    ``progress`` receives the number of members handled after each batch. Sends
    ``repository_cleared`` after a real clear that deleted anything.
    """
    name = validate_repository_name(repository)
    run = _Run(cache, dry_run=dry_run, batch_size=batch_size, progress=progress)
    interrupted = False
    try:
        with translate_redis_errors(run.client):
            run.repository_members(name, report=True)
            run.repository_orphans(name)
    except KeyboardInterrupt:
        interrupted = True
    result = run.tally.result(dry_run, interrupted)
    if not dry_run and result.keys_deleted:
        signals.repository_cleared.send(sender=type(cache), repository=name, cleared=result.cleared)
    return result


def repository_size(cache: DescriptorCache, repository: str) -> int:
    """The number of members of a repository (SCARD), e.g. as a progress bar's total."""
    name = validate_repository_name(repository)
    with translate_redis_errors(cache.client):
        if _text(cache.client.type(keys.membership_key(name))) != "set":
            return 0
        return int(cache.client.scard(keys.membership_key(name)))
