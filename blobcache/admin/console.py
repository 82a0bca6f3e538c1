"""The operator console: the cache seen and cleared from the host's Django admin.

A ``ModelAdmin`` on the table-less ``CachedDescriptor`` gives the console a place in whatever
admin site the host uses (``admin.site`` or its own ``AdminSite``): the changelist is the
overview, and ``get_urls`` adds the other pages, each wrapped in ``admin_site.admin_view`` so
the host's login, staff check and CSRF rules apply unchanged.

Each page costs Redis a bounded amount of work: listings are one page of a SCAN/SSCAN cursor
(``blobcache.listing``), a digest lookup examines a bounded number of repositories per request
and hands over a cursor to continue. The operations that are whole-database by nature (clear a
digest everywhere, reconcile, a repository sweep) run only from a POST the operator confirmed,
and a full count of the cache runs in a background thread, never inside a request.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.http import urlencode

from blobcache import actor, audit, bulk, connection, keys, listing, statistics
from blobcache.admin.forms import DescriptorForm
from blobcache.api.permissions import CHANGE, DELETE, VIEW
from blobcache.cache import DescriptorCache, get_descriptor_cache, translate_redis_errors
from blobcache.checks import REQUIRED_EVICTION_POLICY
from blobcache.connection import describe_client
from blobcache.descriptor import Descriptor
from blobcache.digest import validate_digest
from blobcache.exceptions import (
    BlobCacheError,
    BlobUnknown,
    CacheUnavailable,
    DescriptorCorrupt,
    DescriptorInvalid,
    NameInvalid,
)
from blobcache.models import (
    CLEAR,
    CLEAR_EVERYWHERE,
    CLEAR_REPOSITORY_SCOPE,
    FAILED,
    GLOBAL_SCOPE,
    REPOSITORY_SCOPE,
    RUNNING,
    SET,
    CachedDescriptor,
    CacheStatistics,
)
from blobcache.reconcile import REASONS, ClearedEntry, reconcile
from blobcache.reference import NAME_MAX_LENGTH, validate_repository_name
from blobcache.storage import StorageInvalid, StorageUnavailable
from blobcache.storage.config import configured_description, is_configured

#: Rows on one page of a listing (members, repositories, reconcile entries).
PAGE_SIZE = 100
#: Repositories a digest lookup examines per request before offering "continue".
LOOKUP_REPOSITORIES = 500
#: Listing pages a digest lookup reads per request (a sparse keyspace gives short pages).
LOOKUP_PAGES = 20
#: A filter longer than any repository name matches nothing and only costs Redis glob work.
FILTER_MAX = NAME_MAX_LENGTH
BAD_CURSOR = "the cursor is not one a page of this listing gave"
#: Where reconcile reports live between the dry run and the pages that show it.
REPORT_DIR = Path(tempfile.gettempdir()) / "blobcache-console"
#: A count still "running" after this many seconds is taken for one whose process died.
COUNT_STALE_AFTER = 3600
#: Reports older than this are removed when a new one is written.
REPORT_MAX_AGE = 24 * 3600
_SESSION_REPORT = "blobcache_reconcile_report"

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The console's navigation entry each page template belongs to.
_SECTIONS = {
    "overview": "overview",
    "repositories": "repositories",
    "repository": "repositories",
    "set": "repositories",
    "digest": "digest",
    "reconcile": "reconcile",
}

MISS = "miss"
CORRUPT = "corrupt"


# --- what the pages show -------------------------------------------------------------------------


def topology_of(client: Any) -> str:
    """The kind of deployment behind a client, in the words of Redis's documentation."""
    topology = connection.topology_of(client)
    if topology == connection.CLUSTER:
        return "Redis Cluster"
    if topology == connection.SENTINEL:
        return "Redis Sentinel"
    pool = getattr(client, "connection_pool", None)
    if getattr(pool, "connection_kwargs", {}).get("path"):
        return "standalone (unix socket)"
    return "standalone"


@dataclass(frozen=True)
class ServerState:
    versions: list[str]
    #: ``maxmemory-policy`` per primary; None when the server refuses CONFIG GET.
    policies: dict[str, str] | None

    @property
    def policy_warning(self) -> bool:
        return bool(self.policies) and any(
            policy != REQUIRED_EVICTION_POLICY for policy in (self.policies or {}).values()
        )


def server_state(cache: DescriptorCache) -> ServerState:
    """Two round trips: INFO server and CONFIG GET (one per primary on Cluster)."""
    client = cache.client
    with translate_redis_errors(client):
        replies = cache.store.on_primaries("info", "server")
    versions = sorted({str(reply.get("redis_version", "?")) for reply in replies.values()})
    return ServerState(versions, cache.eviction_policies())


@dataclass(frozen=True)
class Row:
    """A descriptor as a page shows it: ``state`` is "", ``miss`` or ``corrupt``."""

    digest: str
    descriptor: Descriptor | None
    state: str = ""
    problem: str = ""
    #: The repository's own media type, shown when it differs from the global one.
    override: str = ""


def flagged(digest: str, stat: Callable[[str], Descriptor]) -> Row:
    """A row for an entry read the way the registry reads it, its failure kept as a flag."""
    try:
        return Row(digest, stat(digest))
    except BlobUnknown:
        return Row(digest, None, MISS, "no complete descriptor in the cache")
    except DescriptorCorrupt as error:
        return Row(digest, None, CORRUPT, error.message)


def member_rows(
    cache: DescriptorCache, repository: str, members: list[listing.Member]
) -> list[Row]:
    """Rows for one page of members: overrides from one pipelined read, flags per bad entry.

    A member listed without a descriptor is read again alone to say a miss from a corrupt
    entry; that costs one round trip per bad entry of the page, never more than the page.
    """
    scoped = cache.repository_scoped(repository)
    calls = [("hget", (keys.global_key(m.digest), keys.FIELD_MEDIA_TYPE)) for m in members]
    with translate_redis_errors(cache.client):
        replies = cache.store.read_each(calls)
    rows = []
    for member, global_type in zip(members, replies, strict=True):
        if member.descriptor is None:
            rows.append(flagged(member.digest, scoped.stat))
            continue
        shown = keys.key_text(global_type) if isinstance(global_type, bytes | str) else None
        override = member.descriptor.media_type if shown != member.descriptor.media_type else ""
        rows.append(Row(member.digest, member.descriptor, override=override))
    return rows


@dataclass(frozen=True)
class Holder:
    repository: str
    row: Row


def holders(
    cache: DescriptorCache, digest: str, position: listing.ScanPosition, budget: int
) -> tuple[list[Holder], listing.ScanPosition | None, int]:
    """The repositories holding ``digest`` among the next ``budget`` or so repositories.

    Returns the holders, the position to continue from (None: the walk is complete) and how
    many repositories were examined. A sparse keyspace gives short listing pages, so the
    number of pages is bounded too. Membership is asked in one pipeline per listing page.
    """
    found: list[Holder] = []
    examined = 0
    for _ in range(LOOKUP_PAGES):
        wanted = min(budget - examined, listing.MAX_PAGE_SIZE)
        page = listing.list_repositories(cache, position, wanted)
        examined += len(page.items)
        names = [item.name for item in page.items]
        calls = [("sismember", (keys.membership_key(name), digest)) for name in names]
        with translate_redis_errors(cache.client):
            replies = cache.store.read_each(calls)
        for name, member in zip(names, replies, strict=True):
            if member is True or member == 1:
                try:
                    scoped = cache.repository_scoped(name)
                except BlobCacheError:
                    continue  # a key no registry would write; nothing to clear through it
                found.append(Holder(name, flagged(digest, scoped.stat)))
        if page.next is None or examined >= budget:
            return found, page.next, examined
        position = page.next
    return found, position, examined


# --- reconcile reports: bounded in memory, kept in a file between requests -----------------------


class ReportStore:
    """Reconcile reports as JSON-lines files; the session keeps only the file name and counts.

    A dry run over a large registry can list millions of entries: they go to disk as they are
    found (``on_cleared``), and a page reads one slice back. Files live in ``REPORT_DIR``, are
    private to the server's user and are removed after ``REPORT_MAX_AGE``.
    """

    def __init__(self, directory: Path = REPORT_DIR) -> None:
        self.directory = directory

    def create(self) -> tuple[str, Any]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.prune()
        token = secrets.token_hex(16)
        handle = open(self.path(token), "w", encoding="utf-8")  # noqa: SIM115 - closed by caller
        return token, handle

    def path(self, token: str) -> Path:
        if not token.isalnum():
            raise ValueError("bad report token")
        return self.directory / f"{token}.jsonl"

    def page(self, token: str, number: int, size: int = PAGE_SIZE) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        first = number * size
        try:
            with open(self.path(token), encoding="utf-8") as handle:
                for index, line in enumerate(handle):
                    if index >= first + size:
                        break
                    if index >= first:
                        rows.append(json.loads(line))
        except (OSError, ValueError):
            return []
        return rows

    def prune(self) -> None:
        deadline = timezone.now().timestamp() - REPORT_MAX_AGE
        for old in self.directory.glob("*.jsonl"):
            try:
                if old.stat().st_mtime < deadline:
                    old.unlink()
            except OSError:
                pass


reports = ReportStore()


# --- background counts ---------------------------------------------------------------------------

#: The thread of the last count started in this process (tests join it).
counting: threading.Thread | None = None


def running_count() -> CacheStatistics | None:
    """A count started recently and not finished; an older "running" row is a count whose
    process died (a restart, a killed worker) and must not block new counts forever."""
    since = timezone.now() - timedelta(seconds=COUNT_STALE_AFTER)
    return (
        CacheStatistics.objects.filter(state=RUNNING, started_at__gte=since)
        .order_by("-started_at", "-id")
        .first()
    )


def start_count(username: str) -> CacheStatistics:
    """Start a full count in a thread of this process; the returned row says "running".

    The count is a SCAN of the whole database, seconds to minutes on a large one, so it never
    runs inside a request: the overview shows the row's state until the thread finishes it.
    """
    global counting
    with actor.acting_as(actor.ADMIN, username):
        row = statistics.start()
    cache = get_descriptor_cache()

    def count() -> None:
        from django.db import connection

        try:
            statistics.finish(row, bulk.cache_stats(cache))
        except Exception as error:  # noqa: BLE001 - the row must say why the count stopped
            statistics.fail(row, str(error))
        finally:
            connection.close()

    counting = threading.Thread(target=count, name="blobcache-count", daemon=True)
    counting.start()
    return row


# --- the admin -----------------------------------------------------------------------------------

View = Callable[..., HttpResponse]


def _allowed(request: HttpRequest, permission: str) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and user.has_perm(permission))


@contextmanager
def as_admin(request: HttpRequest) -> Iterator[None]:
    with actor.acting_as(actor.ADMIN, request.user.get_username()):
        yield


class CachedDescriptorAdmin(admin.ModelAdmin):
    """The console's pages; permissions are the REST API's three."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _allowed(request, VIEW)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _allowed(request, CHANGE)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _allowed(request, DELETE)

    # --- plumbing ---

    def url_name(self, page: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{page}"

    def url(self, name: str, /, **query: Any) -> str:
        location = reverse(f"{self.admin_site.name}:{self.url_name(name)}")
        present = {name: value for name, value in query.items() if value not in (None, "")}
        return f"{location}?{urlencode(present)}" if present else location

    def get_urls(self) -> list[URLPattern]:
        pages: list[tuple[str, str, View]] = [
            ("statistics/", "statistics", self.statistics_view),
            ("repositories/", "repositories", self.repositories_view),
            ("repository/", "repository", self.repository_view),
            ("repository/set/", "repository_set", self.repository_set_view),
            ("repository/clear/", "repository_clear", self.repository_clear_view),
            ("repository/clear-scope/", "repository_scope", self.repository_scope_view),
            ("digest/", "digest", self.digest_view),
            ("digest/clear/", "digest_clear", self.digest_clear_view),
            ("reconcile/", "reconcile", self.reconcile_view),
            ("reconcile/apply/", "reconcile_apply", self.reconcile_apply_view),
        ]
        # Only the console's own routes: the add/change/delete/history views of a ModelAdmin
        # would query a table that does not exist.
        pages.append(("", "changelist", self.overview_view))
        return [
            path(route, self.admin_site.admin_view(self.guarded(view)), name=self.url_name(name))
            for route, name, view in pages
        ]

    def guarded(self, view: View) -> View:
        """Redis down or refusing: the page says so in the admin's frame, within its timeouts."""

        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except CacheUnavailable as error:
                return self.render(
                    request, "unavailable", "Redis unavailable", {"error": error.message},
                    status=503,
                )

        return wrapper

    def render(
        self,
        request: HttpRequest,
        template: str,
        title: str,
        context: dict[str, Any],
        status: int = 200,
    ) -> HttpResponse:
        # The admin's own templates resolve "admin:..." through the current instance.
        request.current_app = self.admin_site.name
        base = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "console_section": _SECTIONS.get(template, ""),
            "console_urls": {
                "overview": self.url("changelist"),
                "repositories": self.url("repositories"),
                "digest": self.url("digest"),
                "reconcile": self.url("reconcile"),
            },
            "can_change": self.has_change_permission(request),
            "can_delete": self.has_delete_permission(request),
        }
        return TemplateResponse(
            request,
            f"admin/blobcache/console/{template}.html",
            {**base, **context},
            status=status,
        )

    def require(self, request: HttpRequest, permission: str) -> None:
        if not _allowed(request, permission):
            raise PermissionDenied

    def confirmation_fields(self, request: HttpRequest) -> QueryDict:
        """The fields of a clear: in the query for its confirmation page, in the form for the
        POST that acts; either needs the delete permission."""
        self.require(request, DELETE)
        return request.POST if request.method == "POST" else request.GET

    def bad_input(self, request: HttpRequest, title: str, error: BlobCacheError) -> HttpResponse:
        return self.render(request, "invalid", title, {"error": error.message}, status=400)

    # --- 1. overview ---

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        self.require(request, VIEW)
        cache = get_descriptor_cache()
        context: dict[str, Any] = {
            "topology": topology_of(cache.client),
            "address": describe_client(cache.client),
            "required_policy": REQUIRED_EVICTION_POLICY,
            "last_count": statistics.latest(),
            "running_count": running_count(),
            "failed_count": CacheStatistics.objects.order_by("-started_at", "-id")
            .filter(state=FAILED)
            .exclude(started_at__lt=getattr(statistics.latest(), "started_at", None) or EPOCH)
            .first(),
            "now": timezone.now(),
        }
        try:
            context["server"] = server_state(cache)
        except CacheUnavailable as error:
            # The overview is where an operator looks first: it stays, saying what is wrong.
            context["error"] = error.message
        return self.render(request, "overview", "Blob descriptor cache", context)

    def statistics_view(self, request: HttpRequest) -> HttpResponse:
        self.require(request, VIEW)
        if request.method != "POST":
            return HttpResponseRedirect(self.url("changelist"))
        running = running_count()
        if running is not None:
            messages.warning(
                request, f"A count is already running since {running.started_at:%Y-%m-%d %H:%M:%S}."
            )
        else:
            start_count(request.user.get_username())
            messages.success(request, "Counting started; reload this page to see the result.")
        return HttpResponseRedirect(self.url("changelist"))

    # --- 2. repositories ---

    def repositories_view(self, request: HttpRequest) -> HttpResponse:
        self.require(request, VIEW)
        text = request.GET.get("q", "")
        if len(text) > FILTER_MAX:
            error = f"a filter has at most {FILTER_MAX} characters (a repository name's limit)"
            return self.render(request, "invalid", "Repositories", {"error": error}, 400)
        mode = "glob" if request.GET.get("mode") == "glob" else "prefix"
        pattern = (text or "*") if mode == "glob" else keys.glob_escape(text) + "*"
        position = _position(request)
        if position is None:
            return self.render(request, "invalid", "Repositories", {"error": BAD_CURSOR}, 400)
        page = listing.list_repositories(
            get_descriptor_cache(), position, PAGE_SIZE, names=pattern
        )
        next_url = (
            self.url("repositories", q=text, mode=mode, cursor=page.next.encode())
            if page.next
            else ""
        )
        return self.render(
            request,
            "repositories",
            "Repositories",
            {
                "page": page,
                "q": text,
                "mode": mode,
                "next_url": next_url,
                "first_url": self.url("repositories", q=text, mode=mode)
                if _started(request)
                else "",
            },
        )

    # --- 3. repository detail ---

    def repository_view(self, request: HttpRequest) -> HttpResponse:
        self.require(request, VIEW)
        try:
            name = validate_repository_name(request.GET.get("name", ""))
        except BlobCacheError as error:
            return self.bad_input(request, "Repository", error)
        position = _position(request)
        if position is None:
            return self.render(request, "invalid", "Repository", {"error": BAD_CURSOR}, 400)
        cache = get_descriptor_cache()
        page = listing.list_members(cache.repository_scoped(name), position, PAGE_SIZE)
        return self.render(
            request,
            "repository",
            name,
            {
                "repository": name,
                "rows": member_rows(cache, name, page.items),
                "members": bulk.repository_size(cache, name),
                "next_url": self.url("repository", name=name, cursor=page.next.encode())
                if page.next
                else "",
                "first_url": self.url("repository", name=name) if _started(request) else "",
            },
        )

    def repository_set_view(self, request: HttpRequest) -> HttpResponse:
        """Write or correct one repository's descriptor for a digest, as the registry's
        SetDescriptor does (global fields, the repository's media type, then membership).

        Not behind a confirmation: it removes nothing, and the form itself is the second step.
        A descriptor already there fills the form, so a correction starts from what is stored.
        """
        # The page shows what is stored, so changing needs viewing too.
        self.require(request, VIEW)
        self.require(request, CHANGE)
        source = request.POST if request.method == "POST" else request.GET
        try:
            name = validate_repository_name(source.get("name", ""))
        except BlobCacheError as error:
            return self.bad_input(request, "Set a descriptor", error)
        cache = get_descriptor_cache()
        scoped = cache.repository_scoped(name)
        back = self.url("repository", name=name)
        status = 200
        if request.method == "POST":
            form = DescriptorForm(request.POST)
            if form.is_valid():
                digest = form.cleaned_data["digest"]
                try:
                    with as_admin(request), audit.recording(
                        SET, scope=REPOSITORY_SCOPE, repository=name, digest=digest
                    ) as entry:
                        stored, created = scoped.put(digest, form.descriptor())
                        entry.detail = audit.set_detail(stored, created)
                except DescriptorCorrupt as error:
                    # The stored entry is in the way (a key of the wrong type): say so by the
                    # form, which keeps what the operator typed. The entry was not made (on
                    # Cluster a hash may be written, but never the membership that lists it).
                    form.add_error(None, f"{error.message}. Clear the entry, then set it.")
                except DescriptorInvalid as error:
                    form.add_error(None, error.message)
                else:
                    done = "Created" if created else "Updated"
                    messages.success(request, f"{done} {digest} in {name}.")
                    return HttpResponseRedirect(back)
            status = 400
            digest = str(form["digest"].value() or "")
            current = flagged(digest, scoped.stat) if bulk.is_valid_digest(digest) else None
        else:
            # A descriptor already there fills the form: a correction starts from it.
            digest = source.get("digest", "")
            current = flagged(digest, scoped.stat) if bulk.is_valid_digest(digest) else None
            initial: dict[str, Any] = {"digest": digest}
            if current is not None and current.descriptor is not None:
                found = current.descriptor
                initial.update(size=found.size, media_type=found.media_type)
            form = DescriptorForm(initial=initial)
        return self.render(
            request,
            "set",
            f"Set a descriptor in {name}",
            {
                "form": form,
                "repository": name,
                "rows": [current] if current is not None else [],
                "back": back,
                "crumb": (name, back),
            },
            status=status,
        )

    def repository_clear_view(self, request: HttpRequest) -> HttpResponse:
        """One repository's entry for one digest (3.1+ clear), behind a confirmation."""
        source = self.confirmation_fields(request)
        try:
            name = validate_repository_name(source.get("name", ""))
            digest = validate_digest(source.get("digest", ""))
        except BlobCacheError as error:
            return self.bad_input(request, "Clear an entry", error)
        cache = get_descriptor_cache()
        scoped = cache.repository_scoped(name)
        back = self.url("repository", name=name)
        if request.method == "POST":
            with as_admin(request), audit.recording(
                CLEAR, scope=REPOSITORY_SCOPE, repository=name, digest=digest
            ):
                scoped.clear(digest)
            messages.success(request, f"Cleared {digest} from {name}.")
            return HttpResponseRedirect(back)
        return self.render(
            request,
            "confirm",
            "Are you sure?",
            {
                "question": f"Clear {name}'s entry for this digest?",
                "consequences": [
                    f"the membership of {digest} in {name}",
                    "the repository's media type for it",
                    "the digest's global descriptor fields (the registry's 3.1+ clear)",
                ],
                "rows": [flagged(digest, scoped.stat)],
                "fields": {"name": name, "digest": digest},
                "back": back,
                "crumb": (name, back),
            },
        )

    def repository_scope_view(self, request: HttpRequest) -> HttpResponse:
        """A repository's whole scope; the confirmation shows a dry run's numbers."""
        source = self.confirmation_fields(request)
        try:
            name = validate_repository_name(source.get("name", ""))
        except BlobCacheError as error:
            return self.bad_input(request, "Clear a repository scope", error)
        sweep = source.get("sweep") == "1"
        cache = get_descriptor_cache()
        back = self.url("repository", name=name)
        if request.method == "POST":
            with as_admin(request), audit.recording(
                CLEAR_REPOSITORY_SCOPE, scope=REPOSITORY_SCOPE, repository=name
            ) as entry:
                result = bulk.clear_repository_scope(cache, name, sweep=sweep)
                entry.set_result(result)
            messages.success(
                request,
                f"Cleared {result.cleared} entries of {name} ({result.keys_deleted} keys deleted).",
            )
            return HttpResponseRedirect(back)
        dry = bulk.clear_repository_scope(cache, name, dry_run=True, sweep=sweep)
        return self.render(
            request,
            "confirm",
            "Are you sure?",
            {
                "question": f"Clear the whole scope of {name}?",
                "consequences": [
                    f"{dry.cleared} repository entries ({dry.keys_deleted} Redis keys)",
                ],
                "note": "Global descriptors stay: other repositories may share them.",
                "dry_run": dry,
                "sweep": sweep,
                "sweep_url": self.url("repository_scope", name=name, sweep="" if sweep else "1"),
                "fields": {"name": name, "sweep": "1" if sweep else ""},
                "back": back,
                "crumb": (name, back),
            },
        )

    # --- 4. digest lookup ---

    def digest_view(self, request: HttpRequest) -> HttpResponse:
        self.require(request, VIEW)
        text = request.GET.get("digest", "").strip()
        context: dict[str, Any] = {"digest": text}
        if text:
            try:
                digest = validate_digest(text)
            except BlobCacheError as error:
                context["error"] = error.message
                return self.render(request, "digest", "Digest lookup", context, status=400)
            position = _position(request)
            if position is None:
                context["error"] = BAD_CURSOR
                return self.render(request, "digest", "Digest lookup", context, status=400)
            cache = get_descriptor_cache()
            found, following, examined = holders(cache, digest, position, LOOKUP_REPOSITORIES)
            context.update(
                {
                    "row": flagged(digest, cache.stat),
                    "holders": found,
                    "examined": examined,
                    "continue_url": self.url("digest", digest=digest, cursor=following.encode())
                    if following
                    else "",
                }
            )
        return self.render(request, "digest", "Digest lookup", context)

    def digest_clear_view(self, request: HttpRequest) -> HttpResponse:
        """The global entry (3.x clear), or the global entry and every repository's."""
        source = self.confirmation_fields(request)
        try:
            digest = validate_digest(source.get("digest", ""))
        except BlobCacheError as error:
            return self.bad_input(request, "Clear a digest", error)
        everywhere = source.get("everywhere") == "1"
        cache = get_descriptor_cache()
        back = self.url("digest", digest=digest)
        if request.method == "POST":
            with as_admin(request):
                if everywhere:
                    with audit.recording(CLEAR_EVERYWHERE, digest=digest) as entry:
                        result = bulk.clear_digests(cache, [digest], everywhere=True)
                        entry.set_result(result)
                    messages.success(
                        request, f"Cleared {result.cleared} entries of {digest} everywhere."
                    )
                else:
                    with audit.recording(CLEAR, scope=GLOBAL_SCOPE, digest=digest):
                        cache.clear(digest)
                    messages.success(request, f"Cleared the global descriptor of {digest}.")
            return HttpResponseRedirect(back)
        consequences = ["the digest's global descriptor fields"]
        if everywhere:
            consequences.append(
                "its entry in every repository that holds it (one SCAN pass over the "
                "repository keys of the whole database)"
            )
        return self.render(
            request,
            "confirm",
            "Are you sure?",
            {
                "question": f"Clear {digest} {'everywhere' if everywhere else 'globally'}?",
                "consequences": consequences,
                "rows": [flagged(digest, cache.stat)],
                "fields": {"digest": digest, "everywhere": "1" if everywhere else ""},
                "back": back,
                "crumb": ("Digest lookup", back),
            },
        )

    # --- 5. reconcile ---

    def reconcile_view(self, request: HttpRequest) -> HttpResponse:
        """GET shows the last report; POST runs a dry run and stores its report."""
        self.require(request, VIEW)
        if request.method == "POST":
            self.require(request, DELETE)
            if not is_configured():
                return HttpResponseRedirect(self.url("reconcile"))
            repository = request.POST.get("repository", "").strip() or None
            try:
                self.run_reconcile(request, repository, dry_run=True)
            except (StorageInvalid, StorageUnavailable, NameInvalid) as error:
                # With the status the API answers: 400 for settings naming no usable storage,
                # 503 for storage that may come back.
                return self.reconcile_page(request, error.message, error.status_code)
            return HttpResponseRedirect(self.url("reconcile"))
        return self.reconcile_page(request)

    def reconcile_page(
        self, request: HttpRequest, error: str = "", status: int = 200
    ) -> HttpResponse:
        report = request.session.get(_SESSION_REPORT)
        number = _page_number(request)
        context: dict[str, Any] = {
            # Where the configured storage is, read from the settings without opening it.
            "root": configured_description(),
            "report": report,
            "reasons": REASONS,
            "error": error,
            "repository": request.POST.get("repository", ""),
        }
        if report:
            context["entries"] = reports.page(report["token"], number)
            total = report["summary"]["cleared"]
            context["page_number"] = number + 1
            context["pages"] = max(1, -(-total // PAGE_SIZE))
            if (number + 1) * PAGE_SIZE < total:
                context["next_url"] = self.url("reconcile", page=number + 1)
            if number:
                context["previous_url"] = self.url("reconcile", page=number - 1)
        return self.render(request, "reconcile", "Reconcile with storage", context, status)

    def reconcile_apply_view(self, request: HttpRequest) -> HttpResponse:
        self.require(request, DELETE)
        report = request.session.get(_SESSION_REPORT)
        if not is_configured() or not report or not report["summary"]["dry_run"]:
            messages.warning(request, "Run a dry run first: apply follows its report.")
            return HttpResponseRedirect(self.url("reconcile"))
        repository = report["summary"]["repository"]
        if request.method == "POST":
            try:
                self.run_reconcile(request, repository, dry_run=False)
            except (StorageInvalid, StorageUnavailable) as error:
                return self.reconcile_page(request, error.message, error.status_code)
            return HttpResponseRedirect(self.url("reconcile"))
        summary = report["summary"]
        return self.render(
            request,
            "confirm",
            "Are you sure?",
            {
                "question": "Clear every entry that storage no longer backs?",
                "consequences": [
                    f"{summary['reasons'][reason]} × {reason.replace('_', ' ')}"
                    for reason in REASONS
                ],
                "note": "Storage is checked again before each batch: the real run clears what "
                "is stale at that moment, which may differ from the dry run's numbers.",
                "fields": {},
                "back": self.url("reconcile"),
                "crumb": ("Reconcile", self.url("reconcile")),
            },
        )

    def run_reconcile(self, request: HttpRequest, repository: str | None, *, dry_run: bool) -> None:
        token, handle = reports.create()

        def write(entry: ClearedEntry) -> None:
            handle.write(json.dumps(entry.as_dict()) + "\n")

        try:
            with as_admin(request):
                # The configured storage, resolved as the API and the command resolve it.
                result = reconcile(repository=repository, dry_run=dry_run, on_cleared=write)
        except BaseException:
            handle.close()
            os.unlink(reports.path(token))
            raise
        handle.close()
        request.session[_SESSION_REPORT] = {"token": token, "summary": result.summary()}
        what = "would clear" if dry_run else "cleared"
        messages.success(
            request,
            f"Reconcile {'dry run ' if dry_run else ''}{what} {result.cleared} entries "
            f"({result.keys_deleted} keys; {result.skipped} skipped).",
        )


def register_console(site: admin.AdminSite) -> None:
    """Add the console to ``site``; a second call (a host beside the autodiscovery) is harmless."""
    if not site.is_registered(CachedDescriptor):
        site.register(CachedDescriptor, CachedDescriptorAdmin)


def _position(request: HttpRequest) -> listing.ScanPosition | None:
    """The listing position a "next" link carries; None for text no page produced."""
    text = request.GET.get("cursor", "")
    if not text:
        return listing.ScanPosition()
    try:
        return listing.ScanPosition.decode(text)
    except listing.PositionInvalid:
        return None


def _started(request: HttpRequest) -> bool:
    return bool(request.GET.get("cursor"))


def _page_number(request: HttpRequest) -> int:
    text = request.GET.get("page", "0")
    return int(text) if text.isdigit() and len(text) < 10 else 0
