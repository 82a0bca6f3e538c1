"""The audit log in the admin: read-only changelist, filters, search, permissions."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.admin import AdminSite
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from blobcache import actor, audit
from blobcache.admin import register
from blobcache.admin.audit import AuditEntryAdmin
from blobcache.models import AuditEntry

pytestmark = pytest.mark.django_db

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
CHANGELIST = "/admin/blobcache/auditentry/"


@pytest.fixture()
def entries() -> dict[str, AuditEntry]:
    with actor.acting_as(actor.API, "alice"):
        api = audit.record("clear", scope="global", digest=D1, cleared=1)
    with actor.acting_as(actor.COMMAND, "ops (manage.py)"):
        command = audit.record(
            "clear_repository_scope", scope="repository", repository="library/alpine", cleared=3
        )
    old = audit.record("reconcile", repository="team/app", digest=D2, outcome="unavailable")
    assert api is not None and command is not None and old is not None
    AuditEntry.objects.filter(pk=old.pk).update(timestamp=timezone.now() - timedelta(days=30))
    return {"api": api, "command": command, "old": old}


def listed(client: Client, query: str = "") -> list[AuditEntry]:
    response = client.get(CHANGELIST + query)
    assert response.status_code == 200, response.content
    return list(response.context["cl"].result_list)


def staff(*codenames: str) -> Client:
    user = User.objects.create_user(f"staff-{'-'.join(codenames) or 'none'}", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


class TestChangelist:
    def test_newest_first_with_the_columns(
        self, admin_client: Client, entries: dict[str, AuditEntry]
    ) -> None:
        assert listed(admin_client) == [entries["command"], entries["api"], entries["old"]]
        page = admin_client.get(CHANGELIST).content.decode()
        for text in (D1, "library/alpine", "ops (manage.py)", "clear_repository_scope"):
            assert text in page

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("?interface__exact=api", ["api"]),
            ("?interface__exact=python", ["old"]),
            ("?operation__exact=clear_repository_scope", ["command"]),
            ("?user=ops+%28manage.py%29", ["command"]),
            ("?outcome__exact=unavailable", ["old"]),
            ("?q=" + D1[:20], ["api"]),
            ("?q=alpine", ["command"]),
            ("?q=team%2Fapp", ["old"]),
        ],
    )
    def test_filters_and_search(
        self,
        admin_client: Client,
        entries: dict[str, AuditEntry],
        query: str,
        expected: list[str],
    ) -> None:
        assert listed(admin_client, query) == [entries[name] for name in expected]

    def test_date_filter_and_hierarchy(
        self, admin_client: Client, entries: dict[str, AuditEntry]
    ) -> None:
        # The filter's "Past 7 days" choice, as the page links it.
        today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
        since = urlencode(
            {"timestamp__gte": today - timedelta(days=7), "timestamp__lt": today + timedelta(1)}
        )
        page = admin_client.get(CHANGELIST).content.decode()
        assert 'href="?' + since.replace("&", "&amp;") + '"' in page
        assert listed(admin_client, "?" + since) == [entries["command"], entries["api"]]
        old_day = timezone.localtime(AuditEntry.objects.get(pk=entries["old"].pk).timestamp)
        hierarchy = (
            f"?timestamp__year={old_day.year}&timestamp__month={old_day.month}"
            f"&timestamp__day={old_day.day}"
        )
        assert listed(admin_client, hierarchy) == [entries["old"]]

    def test_filter_choices_are_shown(
        self, admin_client: Client, entries: dict[str, AuditEntry]
    ) -> None:
        page = admin_client.get(CHANGELIST).content.decode()
        for title in ("By interface", "By operation", "By user", "By timestamp", "By outcome"):
            assert title in page


class TestReadOnly:
    def test_no_add_change_delete_or_actions_even_for_a_superuser(
        self, admin_client: Client, entries: dict[str, AuditEntry]
    ) -> None:
        entry = entries["api"]
        change = f"{CHANGELIST}{entry.pk}/change/"
        assert admin_client.get(CHANGELIST + "add/").status_code == 403
        assert admin_client.get(f"{CHANGELIST}{entry.pk}/delete/").status_code == 403
        response = admin_client.post(change, {"user": "mallory", "outcome": "ok"})
        assert response.status_code == 403
        assert AuditEntry.objects.get(pk=entry.pk).user == "alice"
        detail = admin_client.get(change)
        assert detail.status_code == 200
        page = detail.content.decode()
        assert 'name="_save"' not in page
        assert D1 in page
        assert 'name="action"' not in admin_client.get(CHANGELIST).content.decode()

    def test_delete_selected_is_refused(
        self, admin_client: Client, entries: dict[str, AuditEntry]
    ) -> None:
        response = admin_client.post(
            CHANGELIST,
            {"action": "delete_selected", "_selected_action": [entries["api"].pk], "post": "yes"},
        )
        assert response.status_code in (200, 302)
        assert AuditEntry.objects.count() == 3


class TestPermissions:
    def test_staff_without_the_view_permission_gets_403(
        self, entries: dict[str, AuditEntry]
    ) -> None:
        client = staff("view_descriptor", "delete_descriptor")
        assert client.get(CHANGELIST).status_code == 403
        assert client.get(f"{CHANGELIST}{entries['api'].pk}/change/").status_code == 403
        assert b"Audit log" not in client.get("/admin/").content

    def test_the_view_permission_is_enough(self, entries: dict[str, AuditEntry]) -> None:
        client = staff("view_auditentry")
        assert len(listed(client)) == 3
        assert client.get(CHANGELIST + "add/").status_code == 403
        assert b"Audit log" in client.get("/admin/").content

    def test_not_staff_is_sent_to_the_login_page(self, entries: dict[str, AuditEntry]) -> None:
        user = User.objects.create_user("viewer", is_staff=False)
        user.user_permissions.set(Permission.objects.filter(codename="view_auditentry"))
        client = Client()
        client.force_login(user)
        response = client.get(CHANGELIST)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))

    def test_only_the_view_permission_exists(self) -> None:
        codenames = set(
            Permission.objects.filter(content_type__model="auditentry").values_list(
                "codename", flat=True
            )
        )
        assert codenames == {"view_auditentry"}


def test_a_hosts_own_admin_site_registers_it() -> None:
    site = AdminSite(name="portal_admin")
    register(site)
    register(site)  # twice is harmless (a host calling it beside the autodiscovery)
    assert isinstance(site._registry[AuditEntry], AuditEntryAdmin)
    names = {pattern.name for pattern in site.get_urls() if getattr(pattern, "name", None)}
    assert "app_list" in names
