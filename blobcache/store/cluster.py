"""Redis Cluster: ordered per-slot steps, each step one round trip to every node it involves.

The registry's keys for one blob hash to different slots and their names are the registry's
(no hash tags possible), so no script or MULTI can span them. Every primitive runs as steps in
the order that keeps readers safe: a reader checks membership first, writers add membership
last and clears remove it first, so a reader never meets a member whose hashes are missing. A
fault between steps leaves hashes without membership, which reads as a miss (the weaker Cluster
guarantee, documented in the README). Each entry is cleared whole before a call returns.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from redis import exceptions as redis_errors
from redis.commands.core import Script

from blobcache import keys
from blobcache.descriptor import Descriptor
from blobcache.exceptions import CacheUnavailable, DescriptorCorrupt
from blobcache.store.base import (
    DIGESTS_GLOBAL,
    HASH_DELETED,
    ORPHANS,
    PAIRS,
    PRESENT,
    RECONCILE_GLOBALS,
    DigestsOutcome,
    Group,
    GroupsOutcome,
    ReconcileOutcome,
    Scan,
    Store,
    corrupt_membership,
    mode,
)

#: A command of a step: the key that routes it, and the command as sent.
Command = tuple[Any, tuple[Any, ...]]

# Replies that say a node did not run the command: the slot moved (MOVED), is moving (ASK,
# TRYAGAIN) or has no node (CLUSTERDOWN). redis-py's own path follows them.
_NOT_RUN = (
    redis_errors.MovedError,
    redis_errors.AskError,
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
)
_UNANSWERED = object()
_DROPPED = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)

# Connections a step keeps out of each node's pool between steps, per pool, so every store on a
# client shares them and they go with the pool. Borrowing from the pool each step costs more
# Python than a short step spends on the network (a readiness probe, two locks and redis-py's
# observability hooks: a quarter of a repository set+clear). A kept connection is taken by one
# step at a time (list.pop and append are atomic) and is put back only after every reply it was
# sent for has been read; one that failed goes back to the pool disconnected, as redis-py does.
# They stay counted as in use by the pool, so closing the client still closes them.
_IDLE_PER_POOL = 8
_idle: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()
_idle_lock = threading.Lock()


def _forget_parents_connections() -> None:
    """A forked child must not share its parent's sockets (nor a lock a parent thread held)."""
    global _idle_lock
    _idle.clear()
    _idle_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_parents_connections)


def _take(pool: Any) -> Any:
    try:
        return _idle[pool].pop()
    except (KeyError, IndexError):
        return pool.get_connection()


def _keep(pool: Any, connection: Any) -> None:
    limit = _idle_limit(pool)
    idle = _idle.get(pool)
    if idle is None and limit:
        with _idle_lock:
            idle = _idle.setdefault(pool, [])
    if idle is not None and len(idle) < limit:
        idle.append(connection)
    else:
        pool.release(connection)


def _idle_limit(pool: Any) -> int:
    """Kept connections count against the pool's ``max_connections`` (100 by default in
    redis-py 8): at most a tenth of it stays out, so a pool sized to its callers still lends
    redis-py's own commands what they need, and a pool below ten keeps none."""
    most = getattr(pool, "max_connections", None)
    if not isinstance(most, int):
        return _IDLE_PER_POOL
    return min(_IDLE_PER_POOL, most // 10)


def command(name: str, key: Any, *args: Any) -> Command:
    return key, (name, key, *args)


def _counted(clear: bool, counting: str, member: bool, existed: bool) -> tuple[int, int]:
    """(entry, key) counted for one digest, as clear_repository_batch.lua counts them."""
    if clear or counting == PAIRS:
        return int(member or existed), int(existed)
    if counting == ORPHANS:
        return int(existed and not member), int(existed and not member)
    return int(existed and not member), int(existed)


class ClusterStore(Store):
    """Each primitive as ordered steps; the commands of one step go out together."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self._loaded: set[str] = set()

    # --- steps ---

    def _step(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` to the primaries of their keys, every node's share written before
        any reply is read, so a step costs one round trip however many nodes it involves.

        redis-py's ClusterPipeline does the same but spends more time in Python than a
        two-command step spends on the network. Commands a node did not run (its slot moved)
        or did not answer (a dropped connection) go through redis-py's own path, which follows
        redirects, refreshes the slot map and retries, as it would for a single command. Each
        reply is returned, or the NoScriptError a script call met; any other error reply is
        raised for the caller's translation (WRONGTYPE on a corrupt entry).
        """
        replies: list[Any] = [_UNANSWERED] * len(commands)
        shares: dict[Any, list[int]] = {}
        for index, (key, _) in enumerate(commands):
            node = self.client.get_node_from_key(key)
            if node is not None and node.redis_connection is not None:
                shares.setdefault(node.redis_connection.connection_pool, []).append(index)
        # A node that cannot be reached, or drops its connection, only loses its own share:
        # the other nodes' replies are still read, so nothing they ran is run twice.
        sent: list[tuple[Any, Any, list[int]]] = []
        try:
            for pool, indexes in shares.items():
                try:
                    connection = _take(pool)
                except _DROPPED:
                    continue
                sent.append((pool, connection, indexes))
                try:
                    connection.send_packed_command(
                        connection.pack_commands([commands[index][1] for index in indexes])
                    )
                except _DROPPED:
                    sent[-1] = (pool, connection, [])
            for _, connection, indexes in sent:
                try:
                    for index in indexes:
                        try:
                            replies[index] = connection.read_response()
                        except redis_errors.ResponseError as error:
                            replies[index] = error
                except _DROPPED:
                    continue
        finally:
            for pool, connection, indexes in sent:
                if indexes and all(replies[index] is not _UNANSWERED for index in indexes):
                    _keep(pool, connection)
                else:
                    # Replies may still be on their way: the connection cannot be reused.
                    connection.disconnect()
                    pool.release(connection)
        for index, reply in enumerate(replies):
            if reply is _UNANSWERED or isinstance(reply, _NOT_RUN):
                try:
                    replies[index] = self.client.execute_command(*commands[index][1])
                except redis_errors.ResponseError as error:
                    replies[index] = error
        for reply in replies:
            if isinstance(reply, Exception) and not isinstance(reply, redis_errors.NoScriptError):
                raise reply
        return replies

    def _script(self, script: Script, key: str, *args: Any) -> Command:
        """A one-key script call for a step. It is loaded on every primary once per store; a
        primary that lost it since answers NOSCRIPT, see ``_redo``."""
        if script.sha not in self._loaded:
            self.client.script_load(script.script)
            self._loaded.add(script.sha)
        return key, ("EVALSHA", script.sha, 1, key, *args)

    def _redo(self, reply: Any, script: Script, key: str, *args: Any) -> Any:
        if isinstance(reply, redis_errors.NoScriptError):
            # A primary restarted (or took the slot over) since the load: it ran nothing, so
            # running the script now is exact.
            self._loaded.discard(script.sha)
            return script(keys=[key], args=list(args))
        return reply

    # --- one entry ---

    def stat_global(self, global_key: str) -> list[Any]:
        [fields] = self._step([command("HMGET", global_key, *keys.DESCRIPTOR_FIELDS)])
        return list(fields)

    def set_global(self, global_key: str, descriptor: Descriptor) -> list[Any]:
        script = self.scripts.set_global
        args = (descriptor.digest, descriptor.size, descriptor.media_type)
        [reply] = self._step([self._script(script, global_key, *args)])
        return list(self._redo(reply, script, global_key, *args))

    def clear_global(self, global_key: str) -> int:
        script = self.scripts.clear_global
        [reply] = self._step([self._script(script, global_key)])
        return int(self._redo(reply, script, global_key))

    def stat_repository(
        self, membership_key: str, global_key: str, repository_key: str, digest: str
    ) -> list[Any]:
        # Two replies in sequence: membership, then both hashes together. A member seen here has
        # its hashes in place (or is being cleared, which reads as a miss).
        [member] = self._step([command("SISMEMBER", membership_key, digest)])
        if not member:
            return [0]
        fields, override = self._step(
            [
                command("HMGET", global_key, *keys.DESCRIPTOR_FIELDS),
                command("HGET", repository_key, keys.FIELD_MEDIA_TYPE),
            ]
        )
        return [1, *fields, override]

    def set_repository(
        self, write_keys: Sequence[str], digest: str, descriptor: Descriptor
    ) -> list[Any]:
        """Hashes first (global and repository together), then membership."""
        membership_key = write_keys[0]
        # The key digest comes first in the keys and last in the members added.
        members = [digest] if len(write_keys) == 3 else [descriptor.digest, digest]
        args = (descriptor.digest, descriptor.size, descriptor.media_type)
        global_keys = list(write_keys[1::2])
        repository_keys = list(write_keys[2::2])
        # A hash of the wrong type fails its own command only: without a script spanning the
        # keys, Cluster writes are not all-or-nothing (membership, written last, is not added).
        replies = self._step(
            [
                *(self._script(self.scripts.set_global, key, *args) for key in global_keys),
                *(
                    command("HSET", key, keys.FIELD_MEDIA_TYPE, descriptor.media_type)
                    for key in repository_keys
                ),
            ]
        )
        # The key digest's own replies: its global hash, its repository hash, its membership.
        global_existed, *fields = self._redo(
            replies[0], self.scripts.set_global, global_keys[0], *args
        )
        for key, reply in zip(global_keys[1:], replies[1 : len(global_keys)], strict=True):
            self._redo(reply, self.scripts.set_global, key, *args)
        override_added = replies[len(global_keys)]
        *_, member_added = self._step(
            [command("SADD", membership_key, member) for member in members]
        )
        existed = bool(global_existed) and not override_added and not member_added
        return [int(existed), *fields, descriptor.media_type]

    def clear_repository(
        self, membership_key: str, repository_key: str, global_key: str, digest: str
    ) -> int:
        """Membership first, then the repository hash and the global fields together."""
        [removed] = self._step([command("SREM", membership_key, digest)])
        if not removed:
            return 0
        clear_global = self.scripts.clear_global
        _, reply = self._step(
            [command("DEL", repository_key), self._script(clear_global, global_key)]
        )
        # The global entry counts as a second entry, as the bulk clears count it.
        return 1 + int(self._redo(reply, clear_global, global_key))

    # --- many entries ---

    def _membership_types(self, repositories: Sequence[str]) -> list[str]:
        kinds = self._step([command("TYPE", keys.membership_key(name)) for name in repositories])
        return [keys.key_text(kind) for kind in kinds]

    def clear_repository_groups(
        self, groups: Sequence[Group], clear: bool, counting: str, batch_size: int
    ) -> GroupsOutcome:
        """The batch script's semantics in steps for all groups together: the sets' types, the
        memberships, the hashes, then the extra members and whether each set is now empty."""
        outcome = GroupsOutcome()
        if not groups:
            return outcome
        is_set = [
            kind == "set" for kind in self._membership_types([g.repository for g in groups])
        ]
        leave = "SREM" if clear else "SISMEMBER"
        membership = iter(
            self._step(
                [
                    command(leave, keys.membership_key(group.repository), digest)
                    for group, live in zip(groups, is_set, strict=True)
                    if live
                    for digest in group.digests
                ]
            )
        )
        touch = "DEL" if clear else "EXISTS"
        hashes = iter(
            self._step(
                [
                    command(touch, keys.repository_key(group.repository, digest))
                    for group in groups
                    for digest in group.digests
                ]
            )
        )
        for group, live in zip(groups, is_set, strict=True):
            flags: list[int] = []
            for _ in group.digests:
                member = bool(next(membership)) if live else False
                entry, deleted = _counted(clear, counting, member, bool(next(hashes)))
                outcome.entries += entry
                outcome.keys_deleted += deleted
                flags.append(entry)
            outcome.flags.append(flags)
        if clear:
            emptied = [group for group, live in zip(groups, is_set, strict=True) if live]
            self._step(
                [
                    command("SREM", keys.membership_key(group.repository), extra)
                    for group in emptied
                    for extra in group.extra_members
                ]
            )
            left = self._step(
                [command("EXISTS", keys.membership_key(group.repository)) for group in emptied]
            )
            outcome.keys_deleted += sum(1 for exists in left if not exists)
        return outcome

    def _globals(self, global_keys: Sequence[str], clear: bool) -> list[list[int]]:
        """The prelude's global Clear per key, one script call per key (a script only touches
        keys of one slot), all in one step: ``[keys_deleted, members, entries]`` per key."""
        script = self.scripts.clear_digests_batch
        args = (mode(clear), DIGESTS_GLOBAL)
        replies = self._step([self._script(script, key, *args) for key in global_keys])
        return [
            [int(value) for value in self._redo(reply, script, key, *args)]
            for key, reply in zip(global_keys, replies, strict=True)
        ]

    def clear_digests_global(self, digests: Sequence[str], clear: bool) -> DigestsOutcome:
        replies = self._globals([keys.global_key(digest) for digest in digests], clear)
        return DigestsOutcome(
            keys_deleted=sum(reply[0] for reply in replies),
            members_removed=0,
            entries=[reply[2] for reply in replies],
        )

    def clear_digests_in(
        self, groups: dict[str, list[str]], clear: bool
    ) -> dict[str, DigestsOutcome | DescriptorCorrupt]:
        """Steps for every group together: the sets' types, the memberships (SREM says which
        digests were members), those digests' repository hashes and global fields, then the
        sets again, to count the ones emptied."""
        outcomes: dict[str, DigestsOutcome | DescriptorCorrupt] = {}
        names = list(groups)
        live: list[str] = []
        for name, kind in zip(names, self._membership_types(names), strict=True):
            if kind == "set":
                live.append(name)
            elif kind == "none":
                outcomes[name] = DigestsOutcome(0, 0, [0] * len(groups[name]))
            else:
                outcomes[name] = corrupt_membership(name)
        leave = "SREM" if clear else "SISMEMBER"
        flags = iter(
            self._step(
                [
                    command(leave, keys.membership_key(name), digest)
                    for name in live
                    for digest in groups[name]
                ]
            )
        )
        members = {name: [bool(next(flags)) for _ in groups[name]] for name in live}
        held = [
            (name, digest)
            for name in live
            for digest, member in zip(groups[name], members[name], strict=True)
            if member
        ]
        touch = "DEL" if clear else "EXISTS"
        hashes = iter(
            self._step([command(touch, keys.repository_key(name, digest)) for name, digest in held])
        )
        globals_cleared = iter(self._globals([keys.global_key(d) for _, d in held], clear))
        for name in live:
            outcome = DigestsOutcome(0, 0, [0] * len(groups[name]))
            for index, member in enumerate(members[name]):
                if not member:
                    continue
                existed, (global_deleted, _, global_entry) = next(hashes), next(globals_cleared)
                outcome.entries[index] = 1 + global_entry
                outcome.members_removed += 1
                outcome.keys_deleted += int(bool(existed)) + global_deleted
            outcomes[name] = outcome
        if clear:
            emptied = [name for name in live if any(members[name])]
            left = self._step([command("EXISTS", keys.membership_key(name)) for name in emptied])
            for name, exists in zip(emptied, left, strict=True):
                emptied_outcome = outcomes[name]
                if not exists and isinstance(emptied_outcome, DigestsOutcome):
                    emptied_outcome.keys_deleted += 1
        return outcomes

    def reconcile_repository(
        self, entries: str, pairs: Sequence[tuple[str, str]], clear: bool
    ) -> ReconcileOutcome:
        """The script's semantics in steps: the sets' types, the memberships, the hashes,
        then (clearing) memberships before hashes, and the sets emptied."""
        names = list(dict.fromkeys(name for name, _ in pairs))
        is_set = {
            name: kind == "set"
            for name, kind in zip(names, self._membership_types(names), strict=True)
        }
        asked = [(name, digest) for name, digest in pairs if is_set[name]]
        replies = iter(
            self._step([command("SISMEMBER", keys.membership_key(n), d) for n, d in asked])
        )
        member = [bool(next(replies)) if is_set[name] else False for name, _ in pairs]
        wanted = [not (entries == ORPHANS and held) for held in member]
        if clear:
            # An entry met twice (SSCAN may return a member twice) is gone the second time, as
            # in the script, which has removed it by then.
            seen: set[tuple[str, str]] = set()
            for index, pair in enumerate(pairs):
                if pair in seen:
                    wanted[index] = False
                seen.add(pair)
        hashes = iter(
            self._step(
                [
                    command("EXISTS", keys.repository_key(name, digest))
                    for (name, digest), go in zip(pairs, wanted, strict=True)
                    if go
                ]
            )
        )
        flags: list[int] = []
        for go, held in zip(wanted, member, strict=True):
            flag = 0
            if go:
                flag = (PRESENT if held else 0) | (HASH_DELETED if next(hashes) else 0)
            flags.append(flag)
        sets_deleted = 0
        if clear:
            chosen = list(zip(pairs, flags, strict=True))
            self._step(
                [
                    command("SREM", keys.membership_key(name), digest)
                    for (name, digest), flag in chosen
                    if flag & PRESENT
                ]
            )
            self._step(
                [
                    command("DEL", keys.repository_key(name, digest))
                    for (name, digest), flag in chosen
                    if flag & HASH_DELETED
                ]
            )
            live = [name for name in names if is_set[name]]
            left = self._step([command("EXISTS", keys.membership_key(name)) for name in live])
            sets_deleted = sum(1 for exists in left if not exists)
        return ReconcileOutcome(sets_deleted, flags)

    def reconcile_globals(self, global_keys: Sequence[str], clear: bool) -> list[int]:
        script = self.scripts.reconcile_batch
        args = (mode(clear), RECONCILE_GLOBALS)
        replies = self._step([self._script(script, key, *args) for key in global_keys])
        return [
            int(self._redo(reply, script, key, *args)[1])
            for key, reply in zip(global_keys, replies, strict=True)
        ]

    # --- reads ---

    def on_primaries(self, command: str, *args: Any) -> dict[str, Any]:
        return dict(getattr(self.client, command)(*args, target_nodes=self.client.PRIMARIES))

    def set_scan(self, pattern: str) -> tuple[Scan, int]:
        """A SCAN of one primary at a time, the node chosen by its index in name order."""
        primaries = sorted(self.client.get_primaries(), key=lambda node: node.name)

        def scan(index: int, at: int, count: int) -> tuple[int, Sequence[Any]]:
            node = primaries[index]
            cursors, batch = self.client.scan(
                cursor=at, match=pattern, count=count, _type="set", target_nodes=node
            )
            if node.name not in cursors:
                raise CacheUnavailable(f"the SCAN of {node.name} answered no cursor")
            return int(cursors[node.name]), batch

        return scan, len(primaries)
