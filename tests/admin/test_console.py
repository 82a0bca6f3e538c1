"""The operator console through Django's test client, on a real Redis: pages, permissions,
CSRF, the audit rows it writes, and exact Redis state after every clear."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from blobcache.admin import console
from blobcache.cache import DescriptorCache
from blobcache.connection import describe_client
from blobcache.models import AuditEntry, CacheStatistics
from blobcache.testing import Topology, caches_for
from tests.audit_state import audit_row, audit_rows
from tests.helpers.api import LAYER
from tests.helpers.console import put, url, values
from tests.helpers.entries import D1, D2, D3, D4, D5, D6
from tests.helpers.storage_tree import ALPINE, APP, OCTET, StorageTree, populate_stale
from tests.redis_state import dump


def text_of(response: Any) -> str:
    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", response.content.decode()))


def follow(client: Client, location: str, link: str, most: int = 20) -> list[str]:
    """The pages from ``location`` on, each reached by the link (``link``, a pattern whose group
    is the address) of the one before, until a page has none; fewer than ``most`` of them."""
    pages: list[str] = []
    while location:
        body = text_of(client.get(location))
        pages.append(body)
        assert len(pages) < most
        following = re.search(link, body)
        location = following.group(1).replace("&amp;", "&") if following else ""
    return pages


def username_of(client: Client) -> str:
    return User.objects.get(pk=client.session["_auth_user_id"]).get_username()


def by_admin(operation: str, user: str, **fields: Any) -> dict[str, Any]:
    return audit_row(operation, interface="admin", user=user, **fields)


@pytest.fixture()
def viewer(make_staff: Callable[..., User], login: Callable[..., Client]) -> Client:
    return login(make_staff("view_descriptor"))


@pytest.fixture()
def clearer(make_staff: Callable[..., User], login: Callable[..., Client]) -> Client:
    return login(make_staff("view_descriptor", "delete_descriptor"))


# --- pages ---------------------------------------------------------------------------------------


class TestPages:
    def test_admin_index_leads_to_the_console_in_one_click(
        self, viewer: Client, redis_client: Any
    ) -> None:
        response = viewer.get(reverse("admin:index"))
        assert response.status_code == 200
        assert f'href="{reverse("admin:blobcache_cacheddescriptor_changelist")}"' in text_of(
            response
        )

    def test_overview_names_the_server_and_runs_no_count(
        self, viewer: Client, redis_client: Any, cache: DescriptorCache
    ) -> None:
        response = viewer.get(url("changelist"))
        body = text_of(response)
        assert response.status_code == 200
        version = redis_client.info("server")["redis_version"]
        assert version in body
        assert "No count yet." in body
        assert CacheStatistics.objects.count() == 0
        address = describe_client(cache.client)
        assert address.startswith("127.0.0.1:") or address.startswith("sentinel service ")
        assert f"<dt>Address</dt><dd><code>{address}</code></dd>" in body

    @pytest.mark.standalone
    def test_overview_never_shows_the_password(
        self, viewer: Client, redis_client: Any, settings: Any
    ) -> None:
        port = redis_client.connection_pool.connection_kwargs["port"]
        settings.CACHES = caches_for(f"redis://:s3cret-word@127.0.0.1:{port}/0")
        response = viewer.get(url("changelist"))
        body = text_of(response)
        assert response.status_code == 200
        assert f"<code>127.0.0.1:{port}</code>" in body
        assert "s3cret-word" not in body

    def test_overview_warns_when_the_policy_is_not_allkeys_lru(
        self, viewer: Client, redis_client: Any
    ) -> None:
        policy = redis_client.config_get("maxmemory-policy")["maxmemory-policy"]
        body = text_of(viewer.get(url("changelist")))
        warning = "maxmemory-policy is not allkeys-lru"
        assert (warning in body) == (policy != "allkeys-lru")
        assert f"<code>{policy}</code>" in body

    def test_repository_detail_flags_misses_corrupt_entries_and_overrides(
        self, viewer: Client, redis_client: Any, cache: DescriptorCache
    ) -> None:
        put(cache, None, D1)
        put(cache, ALPINE, D1, LAYER)  # global stays octet-stream: the override differs
        put(cache, ALPINE, D2)
        redis_client.hset(f"blobs::{D2}", "size", "not-a-number")  # corrupt
        redis_client.sadd(f"repository::{ALPINE}::blobs", D3)  # member without hashes: miss
        response = viewer.get(url("repository", name=ALPINE))
        body = text_of(response)
        assert response.status_code == 200
        assert "3 members." in body
        row = re.search(rf"<tr><td class=\"digest\"><a [^>]*>{D1}</a></td>(.*?)</tr>", body)
        assert row is not None
        media = f'<td class="media">{LAYER}</td>'
        assert f"<td>42</td>{media}{media}" in row.group(1)
        assert f"{D2}</a></td><td colspan=\"2\" class=\"state-corrupt\">corrupt:" in body
        assert f"{D3}</a></td><td colspan=\"2\" class=\"state-miss\">miss:" in body

    @pytest.mark.parametrize("path", ["add/", "1/change/", "1/delete/", "1/history/", "1/"])
    def test_no_database_views_behind_the_console(
        self, viewer: Client, redis_client: Any, path: str
    ) -> None:
        response = viewer.get(reverse("admin:blobcache_cacheddescriptor_changelist") + path)
        assert response.status_code == 404

    def test_repositories_filter_by_prefix_escapes_glob_characters(
        self, viewer: Client, redis_client: Any, cache: DescriptorCache
    ) -> None:
        for name in ("[::1]:5000/app", "[::1]:5000/other", "x/app", "1/app"):
            put(cache, name, D1)
        prefix = text_of(viewer.get(url("repositories", q="[::1]:5000/a")))
        assert re.findall(r">([^<>]+)</a></td><td>1</td>", prefix) == ["[::1]:5000/app"]
        glob = text_of(viewer.get(url("repositories", q="*app", mode="glob")))
        assert sorted(re.findall(r">([^<>]+)</a></td><td>1</td>", glob)) == [
            "1/app", "[::1]:5000/app", "x/app",
        ]

    def test_repositories_are_paged_with_a_cursor(
        self, viewer: Client, redis_client: Any, cache: DescriptorCache, monkeypatch: Any
    ) -> None:
        monkeypatch.setattr(console, "PAGE_SIZE", 2)
        names = {f"team/app{number}" for number in range(7)}
        for name in names:
            put(cache, name, D1)
        pages = follow(viewer, url("repositories"), r'href="([^"]*cursor=[^"]*)">Next page')
        seen = [name for body in pages for name in re.findall(r">(team/app\d)</a></td>", body)]
        assert set(seen) == names

    def test_digest_lookup_walks_in_bounded_steps(
        self, viewer: Client, redis_client: Any, cache: DescriptorCache, monkeypatch: Any
    ) -> None:
        monkeypatch.setattr(console, "LOOKUP_REPOSITORIES", 5)
        holding = {f"team/app{number}" for number in range(40)}
        for name in holding:
            put(cache, name, D1)
        put(cache, "other/repo", D2)
        found: list[str] = []
        steps = follow(viewer, url("digest", digest=D1), r'href="([^"]*)">Continue the walk')
        for body in steps:
            examined = int(re.search(r"(\d+) repositories examined", body).group(1))  # type: ignore[union-attr]
            assert examined <= 5
            found += re.findall(r">(team/app\d+)</a></td><td>42</td>", body)
        assert set(found) == holding
        assert len(steps) >= 2

    @pytest.mark.parametrize(
        ("page", "query"),
        [
            ("repository", {"name": "library//alpine"}),
            ("digest", {"digest": "sha256:short"}),
            ("repositories", {"cursor": "not-a-position"}),
            ("repositories", {"q": "a" * 256, "mode": "glob"}),
            ("repository", {"name": ALPINE, "cursor": "0"}),
            ("digest", {"digest": D1, "cursor": "AAAA"}),
        ],
    )
    def test_bad_input_is_400_with_a_message(
        self, viewer: Client, redis_client: Any, page: str, query: dict[str, str]
    ) -> None:
        response = viewer.get(url(page, **query))
        assert response.status_code == 400
        assert 'class="error"' in text_of(response)


# --- permissions ---------------------------------------------------------------------------------

PAGES = [
    ("changelist", {}),
    ("repositories", {}),
    ("repository", {"name": ALPINE}),
    ("digest", {"digest": D1}),
    ("reconcile", {}),
]
CONFIRMATIONS = [
    ("repository_clear", {"name": ALPINE, "digest": D1}),
    ("repository_scope", {"name": ALPINE}),
    ("digest_clear", {"digest": D1}),
    ("digest_clear", {"digest": D1, "everywhere": "1"}),
]


class TestPermissions:
    @pytest.fixture(autouse=True)
    def _entry(self, cache: DescriptorCache, settings: Any, tmp_path: Path) -> None:
        put(cache, ALPINE, D1)
        (tmp_path / "storage").mkdir()
        settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE_ROOT": str(tmp_path / "storage")}

    @pytest.mark.parametrize(("page", "query"), PAGES)
    @pytest.mark.parametrize(
        ("codenames", "status"),
        [((), 403), (("view_descriptor",), 200), (("change_descriptor",), 403)],
    )
    def test_pages_need_view(
        self, make_staff: Callable[..., User], login: Callable[..., Client],
        page: str, query: dict[str, str], codenames: tuple[str, ...], status: int,
    ) -> None:
        assert login(make_staff(*codenames)).get(url(page, **query)).status_code == status

    @pytest.mark.parametrize(("page", "query"), PAGES + CONFIRMATIONS)
    def test_staff_only(
        self, make_user: Callable[..., User], login: Callable[..., Client],
        page: str, query: dict[str, str],
    ) -> None:
        user = make_user("view_descriptor", "change_descriptor", "delete_descriptor")
        response = login(user).get(url(page, **query))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))

    @pytest.mark.parametrize(("page", "query"), CONFIRMATIONS)
    @pytest.mark.parametrize(
        ("codenames", "status"),
        [
            (("view_descriptor",), 403),
            (("view_descriptor", "change_descriptor"), 403),
            (("view_descriptor", "delete_descriptor"), 200),
        ],
    )
    def test_clears_need_delete(
        self, make_staff: Callable[..., User], login: Callable[..., Client], redis_client: Any,
        page: str, query: dict[str, str], codenames: tuple[str, ...], status: int,
    ) -> None:
        client = login(make_staff(*codenames))
        before = dump(redis_client)
        assert client.get(url(page, **query)).status_code == status
        response = client.post(url(page), {**query, "post": "yes"})
        assert response.status_code == (302 if status == 200 else 403)
        if status == 403:
            assert dump(redis_client) == before
            assert AuditEntry.objects.count() == 0
        else:
            assert dump(redis_client) != before

    @pytest.mark.parametrize("codenames", [("view_descriptor",), ("change_descriptor",)])
    def test_reconcile_needs_delete(
        self, make_staff: Callable[..., User], login: Callable[..., Client], redis_client: Any,
        codenames: tuple[str, ...],
    ) -> None:
        client = login(make_staff(*codenames))
        assert client.post(url("reconcile")).status_code == 403
        assert client.get(url("reconcile_apply")).status_code == 403
        assert client.post(url("reconcile_apply")).status_code == 403
        assert AuditEntry.objects.count() == 0

    def test_counting_needs_view(
        self, make_staff: Callable[..., User], login: Callable[..., Client]
    ) -> None:
        assert login(make_staff()).post(url("statistics")).status_code == 403
        assert CacheStatistics.objects.count() == 0

    def test_buttons_follow_permissions(
        self, make_staff: Callable[..., User], login: Callable[..., Client]
    ) -> None:
        viewer = text_of(login(make_staff("view_descriptor")).get(url("repository", name=ALPINE)))
        clearer = text_of(
            login(make_staff("view_descriptor", "delete_descriptor")).get(
                url("repository", name=ALPINE)
            )
        )
        assert "Clear this repository" not in viewer and ">Clear</a>" not in viewer
        assert "Clear this repository" in clearer and ">Clear</a>" in clearer


class TestCsrf:
    def test_a_post_without_the_token_is_refused_and_changes_nothing(
        self, make_staff: Callable[..., User], login: Callable[..., Client],
        cache: DescriptorCache, redis_client: Any,
    ) -> None:
        put(cache, ALPINE, D1)
        client = login(make_staff("view_descriptor", "delete_descriptor"), enforce_csrf_checks=True)
        before = dump(redis_client)
        for page, query in CONFIRMATIONS:
            assert client.post(url(page), {**query, "post": "yes"}).status_code == 403
        assert client.post(url("statistics")).status_code == 403
        assert client.post(url("reconcile")).status_code == 403
        assert dump(redis_client) == before
        assert AuditEntry.objects.count() == CacheStatistics.objects.count() == 0

    def test_the_confirmation_form_carries_the_token(
        self, make_staff: Callable[..., User], login: Callable[..., Client],
        cache: DescriptorCache, redis_client: Any,
    ) -> None:
        put(cache, ALPINE, D1)
        client = login(make_staff("view_descriptor", "delete_descriptor"), enforce_csrf_checks=True)
        form = client.get(url("repository_clear", name=ALPINE, digest=D1))
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text_of(form))
        assert token is not None
        response = client.post(
            url("repository_clear"),
            {"name": ALPINE, "digest": D1, "csrfmiddlewaretoken": token.group(1)},
        )
        assert response.status_code == 302
        assert redis_client.exists(f"repository::{ALPINE}::blobs") == 0


# --- setting a descriptor: the form, exact Redis state and the audit log -------------------------


@pytest.fixture()
def changer(make_staff: Callable[..., User], login: Callable[..., Client]) -> Client:
    return login(make_staff("view_descriptor", "change_descriptor"))


def set_form(size: object = 7, media: str = LAYER, digest: str = D1) -> dict[str, Any]:
    return {"name": ALPINE, "digest": digest, "size": size, "media_type": media}


class TestSet:
    def test_the_form_starts_from_what_is_stored(
        self, changer: Client, cache: DescriptorCache
    ) -> None:
        put(cache, ALPINE, D1, LAYER)
        body = text_of(changer.get(url("repository_set", name=ALPINE, digest=D1)))
        assert f'name="digest" value="{D1}"' in body
        assert 'name="size" value="42"' in body
        assert f'name="media_type" value="{LAYER}"' in body
        assert "Stored now" in body

    def test_a_new_entry_is_written_as_the_registry_writes_it(
        self, changer: Client, redis_client: Any
    ) -> None:
        empty = text_of(changer.get(url("repository_set", name=ALPINE)))
        assert 'name="digest"' in empty and "Stored now" not in empty
        response = changer.post(url("repository_set"), set_form())
        assert response.status_code == 302
        assert response["Location"] == url("repository", name=ALPINE)
        assert f"Created {D1} in {ALPINE}." in text_of(changer.get(response["Location"]))
        assert values(redis_client) == {
            f"blobs::{D1}": {"digest": D1, "size": "7", "mediatype": LAYER},
            f"repository::{ALPINE}::blobs": {D1},
            f"repository::{ALPINE}::blobs::{D1}": {"mediatype": LAYER},
        }
        assert audit_rows() == [
            by_admin(
                "set", username_of(changer), scope="repository", repository=ALPINE, digest=D1,
                detail=f"created: size=7 mediaType={LAYER}",
            )
        ]

    def test_a_correction_overrides_the_repository_media_type_only(
        self, changer: Client, cache: DescriptorCache, redis_client: Any
    ) -> None:
        # The registry's SetDescriptor: size and digest are rewritten, the global media type
        # stays the first one written, the repository's becomes the new one.
        put(cache, ALPINE, D1)
        response = changer.post(url("repository_set"), set_form(size=43))
        assert response.status_code == 302
        assert f"Updated {D1} in {ALPINE}." in text_of(changer.get(response["Location"]))
        assert values(redis_client) == {
            f"blobs::{D1}": {"digest": D1, "size": "43", "mediatype": OCTET},
            f"repository::{ALPINE}::blobs": {D1},
            f"repository::{ALPINE}::blobs::{D1}": {"mediatype": LAYER},
        }
        (row,) = audit_rows()
        assert row["detail"] == f"updated: size=43 mediaType={LAYER}"

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("digest", "sha256:abc", "invalid checksum digest length"),
            ("digest", "", "This field is required."),
            ("size", "-1", "Ensure this value is greater than or equal to 0."),
            ("size", "1.5", "Enter a whole number."),
            ("size", str(2**63), "Ensure this value is less than or equal to"),
            ("media_type", "not a media type", "is not of the form type/subtype"),
            ("media_type", "", "This field is required."),
        ],
    )
    def test_bad_input_is_400_by_its_field_and_changes_nothing(
        self, changer: Client, cache: DescriptorCache, redis_client: Any,
        field: str, value: str, message: str,
    ) -> None:
        put(cache, ALPINE, D1)
        before = dump(redis_client)
        response = changer.post(url("repository_set"), {**set_form(), field: value})
        assert response.status_code == 400
        body = text_of(response)
        assert "Please correct the error below." in body
        error = re.search(rf'<div class="form-row field-{field} errors">(.*?)</div>', body)
        assert error is not None and message in error.group(1)
        assert dump(redis_client) == before
        assert AuditEntry.objects.count() == 0

    def test_a_corrupt_entry_is_said_by_the_form_and_left_alone(
        self, changer: Client, redis_client: Any, topology: Topology
    ) -> None:
        redis_client.set(f"blobs::{D1}", "not a hash")
        before = dump(redis_client)
        response = changer.post(url("repository_set"), set_form())
        assert response.status_code == 400
        body = text_of(response)
        assert f"blobs::{D1} holds a string" in body
        assert f'name="media_type" value="{LAYER}"' in body  # what the operator typed stays
        after = dump(redis_client)
        assert after[f"blobs::{D1}"] == before[f"blobs::{D1}"]
        assert f"repository::{ALPINE}::blobs" not in after  # never a member
        if topology.kind != "cluster":  # elsewhere the write is all or nothing
            assert after == before
        (row,) = audit_rows()
        assert (row["operation"], row["outcome"], row["digest"]) == ("set", "corrupt", D1)

    def test_a_bad_repository_name_is_400(self, changer: Client, redis_client: Any) -> None:
        response = changer.post(url("repository_set"), {**set_form(), "name": "Not/Valid"})
        assert response.status_code == 400
        assert dump(redis_client) == {}

    @pytest.mark.parametrize(
        "codenames",
        [("view_descriptor",), ("change_descriptor",), ("view_descriptor", "delete_descriptor")],
    )
    def test_needs_view_and_change(
        self, make_staff: Callable[..., User], login: Callable[..., Client], redis_client: Any,
        codenames: tuple[str, ...],
    ) -> None:
        client = login(make_staff(*codenames))
        assert client.get(url("repository_set", name=ALPINE)).status_code == 403
        assert client.post(url("repository_set"), set_form()).status_code == 403
        assert dump(redis_client) == {}
        assert AuditEntry.objects.count() == 0

    def test_links_follow_permissions(
        self, make_staff: Callable[..., User], login: Callable[..., Client],
        cache: DescriptorCache,
    ) -> None:
        put(cache, ALPINE, D1)
        page = url("repository", name=ALPINE)
        viewer = text_of(login(make_staff("view_descriptor")).get(page))
        changer = text_of(login(make_staff("view_descriptor", "change_descriptor")).get(page))
        assert "Set a descriptor" not in viewer and ">Change</a>" not in viewer
        assert "Set a descriptor" in changer and ">Change</a>" in changer

    def test_a_post_without_the_token_is_refused(
        self, make_staff: Callable[..., User], login: Callable[..., Client], redis_client: Any
    ) -> None:
        client = login(
            make_staff("view_descriptor", "change_descriptor"), enforce_csrf_checks=True
        )
        assert client.post(url("repository_set"), set_form()).status_code == 403
        form = text_of(client.get(url("repository_set", name=ALPINE)))
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
        assert token is not None
        response = client.post(
            url("repository_set"), {**set_form(), "csrfmiddlewaretoken": token.group(1)}
        )
        assert response.status_code == 302
        assert redis_client.smembers(f"repository::{ALPINE}::blobs") == {D1}


# --- clears: exact Redis state and the audit log -------------------------------------------------


class TestClears:
    def test_one_entry(
        self, clearer: Client, cache: DescriptorCache, redis_client: Any
    ) -> None:
        put(cache, ALPINE, D1)
        put(cache, ALPINE, D2)
        confirmation = text_of(clearer.get(url("repository_clear", name=ALPINE, digest=D1)))
        assert "Are you sure?" in confirmation and D1 in confirmation
        response = clearer.post(url("repository_clear"), {"name": ALPINE, "digest": D1})
        assert response.status_code == 302
        assert response["Location"] == url("repository", name=ALPINE)
        followed = text_of(clearer.get(response["Location"]))
        assert f"Cleared {D1} from {ALPINE}." in followed
        assert values(redis_client) == {
            f"blobs::{D2}": {"digest": D2, "size": "42", "mediatype": OCTET},
            f"repository::{ALPINE}::blobs": {D2},
            f"repository::{ALPINE}::blobs::{D2}": {"mediatype": OCTET},
        }
        user = username_of(clearer)
        assert audit_rows() == [
            by_admin("clear", user, scope="repository", repository=ALPINE, digest=D1)
        ]

    def test_repository_scope_confirmation_shows_the_dry_run(
        self, clearer: Client, cache: DescriptorCache, redis_client: Any
    ) -> None:
        put(cache, ALPINE, D1)
        put(cache, ALPINE, D2)
        put(cache, APP, D1)
        before = dump(redis_client)
        body = text_of(clearer.get(url("repository_scope", name=ALPINE)))
        assert "Dry run: 2 entries, 3 keys." in body
        assert dump(redis_client) == before
        response = clearer.post(url("repository_scope"), {"name": ALPINE, "sweep": ""})
        assert response.status_code == 302
        assert values(redis_client) == {
            f"blobs::{D1}": {"digest": D1, "size": "42", "mediatype": OCTET},
            f"blobs::{D2}": {"digest": D2, "size": "42", "mediatype": OCTET},
            f"repository::{APP}::blobs": {D1},
            f"repository::{APP}::blobs::{D1}": {"mediatype": OCTET},
        }
        user = username_of(clearer)
        assert audit_rows() == [
            by_admin(
                "clear_repository_scope", user, scope="repository", repository=ALPINE,
                cleared=2, keys_deleted=3,
            )
        ]

    def test_scope_sweep_finds_hashes_without_membership(
        self, clearer: Client, cache: DescriptorCache, redis_client: Any
    ) -> None:
        redis_client.hset(f"repository::{ALPINE}::blobs::{D4}", "mediatype", OCTET)
        assert "Dry run: 0 entries" in text_of(clearer.get(url("repository_scope", name=ALPINE)))
        body = text_of(clearer.get(url("repository_scope", name=ALPINE, sweep="1")))
        assert "Dry run: 1 entry, 1 key, including a sweep" in body
        clearer.post(url("repository_scope"), {"name": ALPINE, "sweep": "1"})
        assert values(redis_client) == {}

    def test_digest_globally_and_everywhere(
        self, clearer: Client, cache: DescriptorCache, redis_client: Any
    ) -> None:
        put(cache, ALPINE, D1)
        put(cache, APP, D1)
        put(cache, None, D2)
        clearer.post(url("digest_clear"), {"digest": D2})
        assert not redis_client.exists(f"blobs::{D2}")
        assert f"Clear {D1} everywhere?" in text_of(
            clearer.get(url("digest_clear", digest=D1, everywhere="1"))
        )
        clearer.post(url("digest_clear"), {"digest": D1, "everywhere": "1"})
        assert values(redis_client) == {}
        user = username_of(clearer)
        assert audit_rows() == [
            by_admin("clear", user, scope="global", digest=D2),
            by_admin("clear_everywhere", user, digest=D1, cleared=3, keys_deleted=5),
        ]


# --- reconcile -----------------------------------------------------------------------------------


class TestReconcile:
    def test_unconfigured_says_so(self, clearer: Client, redis_client: Any, settings: Any) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE_ROOT": None}
        body = text_of(clearer.get(url("reconcile")))
        assert (
            'Reconciliation needs BLOBCACHE["STORAGE"] (the registry\'s storage section: '
            'filesystem or s3) or BLOBCACHE["STORAGE_ROOT"]'
        ) in body
        assert 'id="dry-run"' not in body

    def test_dry_run_pages_then_apply(
        self, clearer: Client, cache: DescriptorCache, redis_client: Any, settings: Any,
        tmp_path: Path, monkeypatch: Any,
    ) -> None:
        monkeypatch.setattr(console, "PAGE_SIZE", 2)
        monkeypatch.setattr(console, "reports", console.ReportStore(tmp_path / "reports"))
        tree = StorageTree(tmp_path / "storage")
        populate_stale(cache, redis_client, tree)
        settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE_ROOT": str(tree.root)}
        before = dump(redis_client)
        response = clearer.post(url("reconcile"))
        assert response.status_code == 302
        assert dump(redis_client) == before
        first = text_of(clearer.get(url("reconcile")))
        assert "Reconcile dry run would clear 5 entries (5 keys; 0 skipped)." in first
        assert "Page 1 of 3." in first
        for reason, count in (("membership_unlinked", 1), ("membership_data_missing", 1),
                              ("orphan_repository_hash", 1), ("global_data_missing", 2)):
            assert f"<td>{reason}</td><td>{count}</td>" in first
        pages = [first] + [text_of(clearer.get(url("reconcile", page=str(n)))) for n in (1, 2)]
        assert "Page 3 of 3." in pages[2] and "Next page" not in pages[2]
        entries = re.findall(
            r"<td>(\w+)</td><td>([^<]+)</td><td class=\"digest\">([^<]+)</td>", "".join(pages)
        )
        assert sorted(entries) == [
            ("global_data_missing", "(global)", D2),
            ("global_data_missing", "(global)", D5),
            ("membership_data_missing", ALPINE, D2),
            ("membership_unlinked", APP, D1),
            ("orphan_repository_hash", APP, D4),
        ]
        assert "Storage is checked again" in text_of(clearer.get(url("reconcile_apply")))
        assert clearer.post(url("reconcile_apply")).status_code == 302
        assert set(values(redis_client)) == {
            f"blobs::{D1}", f"blobs::{D3}", f"blobs::{D6}",
            f"repository::{ALPINE}::blobs", f"repository::{ALPINE}::blobs::{D1}",
            f"repository::{APP}::blobs", f"repository::{APP}::blobs::{D3}",
        }
        user = username_of(clearer)
        counts = {"membership_unlinked": 1, "membership_data_missing": 1,
                  "orphan_repository_hash": 1, "global_data_missing": 2, "skipped": 0}
        assert audit_rows() == [
            by_admin("reconcile", user, cleared=5, keys_deleted=5, counts=counts, dry_run=True),
            by_admin("reconcile", user, cleared=5, keys_deleted=5, counts=counts),
        ]
        assert "Reconcile cleared 5 entries (5 keys; 0 skipped)." in text_of(
            clearer.get(url("reconcile"))
        )

    def test_apply_without_a_dry_run_goes_back(
        self, clearer: Client, redis_client: Any, settings: Any, tmp_path: Path
    ) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE_ROOT": str(tmp_path)}
        response = clearer.post(url("reconcile_apply"))
        assert response.status_code == 302
        assert AuditEntry.objects.count() == 0


# --- counts in the background --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_count_runs_in_a_thread_and_the_overview_shows_it(
    make_staff: Callable[..., User], login: Callable[..., Client],
    cache: DescriptorCache, redis_client: Any,
) -> None:
    put(cache, ALPINE, D1)
    put(cache, APP, D1)
    put(cache, APP, D2)
    client = login(make_staff("view_descriptor"))
    assert client.post(url("statistics")).status_code == 302
    assert console.counting is not None
    console.counting.join(timeout=30)
    (row,) = CacheStatistics.objects.all()
    assert (row.state, row.descriptors, row.repositories, row.memberships,
            row.repository_hashes, row.interface) == ("done", 2, 2, 3, 3, "admin")
    body = text_of(client.get(url("changelist")))
    assert "<dt>Global descriptors</dt><dd>2</dd>" in body
    assert "<dt>Memberships</dt><dd>3</dd>" in body


@pytest.mark.django_db(transaction=True)
def test_a_running_count_is_not_started_twice(
    make_staff: Callable[..., User], login: Callable[..., Client], redis_client: Any
) -> None:
    CacheStatistics.objects.create(state="running", interface="admin", user="someone")
    client = login(make_staff("view_descriptor"))
    body = text_of(client.post(url("statistics"), follow=True))
    assert "A count is already running since" in body
    assert CacheStatistics.objects.count() == 1
    assert "Count now" in body and "disabled" in body




@pytest.mark.urls("tests.admin.urls")
def test_a_host_admin_site_serves_the_console_with_its_own_links(
    make_staff: Callable[..., User], login: Callable[..., Client],
    cache: DescriptorCache, redis_client: Any,
) -> None:
    put(cache, ALPINE, D1)
    client = login(make_staff("view_descriptor", "delete_descriptor"))
    index = text_of(client.get("/ops/"))
    assert 'href="/ops/blobcache/cacheddescriptor/"' in index
    repositories = text_of(client.get("/ops/blobcache/cacheddescriptor/repositories/"))
    assert f'href="/ops/blobcache/cacheddescriptor/repository/?name={ALPINE}"' in (
        repositories.replace("%2F", "/")
    )
    assert 'href="/ops/">Home</a>' in repositories
    overview = text_of(client.get("/ops/blobcache/cacheddescriptor/"))
    for page in (repositories, overview):
        assert 'href="/admin/' not in page and 'action="/admin/' not in page
    assert 'action="/ops/blobcache/cacheddescriptor/statistics/"' in overview
    detail = text_of(client.get("/ops/blobcache/cacheddescriptor/repository/", {"name": ALPINE}))
    assert "/ops/blobcache/cacheddescriptor/repository/clear/?name=" in detail
    response = client.post(
        "/ops/blobcache/cacheddescriptor/repository/clear/", {"name": ALPINE, "digest": D1}
    )
    assert response["Location"].startswith("/ops/blobcache/cacheddescriptor/repository/")
    assert values(redis_client) == {}


class TestReconcileRefusals:
    @pytest.fixture(autouse=True)
    def _entry(self, cache: DescriptorCache) -> None:
        put(cache, ALPINE, D1)

    def test_a_root_that_is_not_a_registry_is_503_and_clears_nothing(
        self, clearer: Client, redis_client: Any, settings: Any, tmp_path: Path
    ) -> None:
        settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE_ROOT": str(tmp_path)}
        before = dump(redis_client)
        response = clearer.post(url("reconcile"))
        assert response.status_code == 503
        assert "has no docker/registry/v2 folder" in text_of(response)
        assert dump(redis_client) == before
        rows = AuditEntry.objects.values_list("interface", "operation", "dry_run", "outcome")
        assert list(rows) == [("admin", "reconcile", True, "invalid")]

    def test_a_bad_repository_name_is_400(
        self, clearer: Client, redis_client: Any, settings: Any, tmp_path: Path
    ) -> None:
        (tmp_path / "docker" / "registry" / "v2").mkdir(parents=True)
        settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE_ROOT": str(tmp_path)}
        before = dump(redis_client)
        response = clearer.post(url("reconcile"), {"repository": "Bad//name"})
        assert response.status_code == 400
        body = text_of(response)
        assert "invalid reference format" in body and 'value="Bad//name"' in body
        assert dump(redis_client) == before
        rows = AuditEntry.objects.values_list("interface", "operation", "repository", "outcome")
        assert list(rows) == [("admin", "reconcile", "Bad//name", "invalid")]


def test_registering_twice_keeps_one_console() -> None:
    from django.contrib.admin import AdminSite

    from blobcache.admin import register
    from blobcache.admin.console import CachedDescriptorAdmin
    from blobcache.models import CachedDescriptor

    site = AdminSite(name="twice")
    register(site)
    register(site)
    assert isinstance(site._registry[CachedDescriptor], CachedDescriptorAdmin)
