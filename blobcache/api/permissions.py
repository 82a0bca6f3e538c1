"""Who may do what: one model permission per kind of access, superusers have them all."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

VIEW = "blobcache.view_descriptor"
CHANGE = "blobcache.change_descriptor"
DELETE = "blobcache.delete_descriptor"

#: The permission each method needs. Methods missing here are answered 405 by the view, once
#: the caller is known to be authenticated (so probing methods tells an anonymous caller nothing).
METHOD_PERMISSIONS: dict[str, str] = {
    "GET": VIEW,
    "HEAD": VIEW,
    "OPTIONS": VIEW,
    "PUT": CHANGE,
    "DELETE": DELETE,
}


class DescriptorPermissions(BasePermission):
    """Maps HTTP methods to the permissions of ``blobcache.CachedDescriptor``.

    DRF's ``DjangoModelPermissions`` needs a queryset and maps PUT to ``change`` and GET to
    nothing; this API has no queryset and reading the cache is itself sensitive (it reveals
    which blobs a repository holds).
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        needed = METHOD_PERMISSIONS.get(request.method or "")
        if needed is None:
            return True
        return bool(user.has_perm(needed))
