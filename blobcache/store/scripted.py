"""Standalone and Sentinel: one Lua script per primitive, one round trip, atomic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from blobcache import keys
from blobcache.descriptor import Descriptor
from blobcache.exceptions import DescriptorCorrupt
from blobcache.store.base import (
    DIGESTS_GLOBAL,
    DIGESTS_IN_REPOSITORY,
    RECONCILE_GLOBALS,
    DigestsOutcome,
    Group,
    GroupsOutcome,
    ReconcileOutcome,
    Scan,
    Store,
    mode,
)
from blobcache.store.errors import response_error


def _digests_outcome(reply: Sequence[Any]) -> DigestsOutcome:
    return DigestsOutcome(int(reply[0]), int(reply[1]), [int(count) for count in reply[2:]])


class ScriptedStore(Store):
    """Every multi-key primitive is one script: the server runs it whole, so readers never see
    half of a write and an interrupted batch is either done or not started."""

    def stat_repository(
        self, membership_key: str, global_key: str, repository_key: str, digest: str
    ) -> list[Any]:
        reply = self.scripts.stat_repository(
            keys=[membership_key, global_key, repository_key], args=[digest]
        )
        return list(reply)

    def set_repository(
        self, write_keys: Sequence[str], digest: str, descriptor: Descriptor
    ) -> list[Any]:
        reply = self.scripts.set_repository(
            keys=list(write_keys),
            args=[digest, descriptor.digest, descriptor.size, descriptor.media_type],
        )
        return list(reply)

    def clear_repository(
        self, membership_key: str, repository_key: str, global_key: str, digest: str
    ) -> int:
        return int(
            self.scripts.clear_repository(
                keys=[membership_key, repository_key, global_key], args=[digest]
            )
        )

    def clear_repository_groups(
        self, groups: Sequence[Group], clear: bool, counting: str, batch_size: int
    ) -> GroupsOutcome:
        """Script calls of about ``batch_size`` digests each, all in one round trip.

        One call may hold many repositories: a whole-database walk meets hashes of hundreds of
        repositories per SCAN step, and a script call per repository would cost more than the
        deletions themselves.
        """
        outcome = GroupsOutcome()
        if not groups:
            return outcome
        calls: list[list[Group]] = []
        size = 0
        for group in groups:
            if not calls or size + group.weight > batch_size:
                calls.append([])
                size = 0
            calls[-1].append(group)
            size += group.weight
        pipe = self.client.pipeline(transaction=False)
        for call in calls:
            batch_keys: list[str] = []
            counts: list[int] = []
            values: list[Any] = []
            for group in call:
                batch_keys.append(keys.membership_key(group.repository))
                batch_keys += [keys.repository_key(group.repository, d) for d in group.digests]
                counts += [len(group.digests), len(group.extra_members)]
                values += [*group.digests, *group.extra_members]
            self.scripts.clear_repository_batch(
                keys=batch_keys,
                args=[mode(clear), counting, len(call), *counts, *values],
                client=pipe,
            )
        for call, reply in zip(calls, pipe.execute(), strict=True):
            outcome.entries += int(reply[0])
            outcome.keys_deleted += int(reply[1])
            offset = 2
            for group in call:
                end = offset + len(group.digests)
                outcome.flags.append([int(flag) for flag in reply[offset:end]])
                offset = end
        return outcome

    def clear_digests_global(self, digests: Sequence[str], clear: bool) -> DigestsOutcome:
        reply = self.scripts.clear_digests_batch(
            keys=[keys.global_key(digest) for digest in digests], args=[mode(clear), DIGESTS_GLOBAL]
        )
        return _digests_outcome(reply)

    def clear_digests_in(
        self, groups: dict[str, list[str]], clear: bool
    ) -> dict[str, DigestsOutcome | DescriptorCorrupt]:
        """One script call per repository (each atomic on its own), all in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for name, digests in groups.items():
            batch_keys = [keys.membership_key(name)]
            for digest in digests:
                batch_keys += [keys.repository_key(name, digest), keys.global_key(digest)]
            self.scripts.clear_digests_batch(
                keys=batch_keys, args=[mode(clear), DIGESTS_IN_REPOSITORY, *digests], client=pipe
            )
        outcomes: dict[str, DigestsOutcome | DescriptorCorrupt] = {}
        replies = pipe.execute(raise_on_error=False)
        for name, reply in zip(groups, replies, strict=True):
            if isinstance(reply, Exception):
                error = response_error(self.client, reply)
                if not isinstance(error, DescriptorCorrupt):
                    raise error from reply
                outcomes[name] = error
            else:
                outcomes[name] = _digests_outcome(reply)
        return outcomes

    def reconcile_repository(
        self, entries: str, pairs: Sequence[tuple[str, str]], clear: bool
    ) -> ReconcileOutcome:
        batch_keys: list[str] = []
        for repository, digest in pairs:
            batch_keys += [keys.membership_key(repository), keys.repository_key(repository, digest)]
        sets_deleted, *flags = self.scripts.reconcile_batch(
            keys=batch_keys, args=[mode(clear), entries, *(digest for _, digest in pairs)]
        )
        return ReconcileOutcome(int(sets_deleted), [int(flag) for flag in flags])

    def reconcile_globals(self, global_keys: Sequence[str], clear: bool) -> list[int]:
        _, *flags = self.scripts.reconcile_batch(
            keys=list(global_keys), args=[mode(clear), RECONCILE_GLOBALS]
        )
        return [int(flag) for flag in flags]

    def on_primaries(self, command: str, *args: Any) -> dict[str, Any]:
        return {"": getattr(self.client, command)(*args)}

    def set_scan(self, pattern: str) -> tuple[Scan, int]:
        def scan(node: int, at: int, count: int) -> tuple[int, Sequence[Any]]:
            return self.client.scan(  # type: ignore[no-any-return]
                cursor=at, match=pattern, count=count, _type="set"
            )

        return scan, 1
