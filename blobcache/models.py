"""No data lives in the database: this model only hosts the API's permissions.

Permissions need a content type, and a content type needs a model. An unmanaged model without a
table gives an admin something to grant (``blobcache.view_descriptor`` and friends) in the user
and group pages, without a migration that creates anything but the permission rows.
"""

from __future__ import annotations

from django.db import models


class CachedDescriptor(models.Model):
    """Stands for the descriptors in the registry's Redis; never queried, never saved."""

    class Meta:
        managed = False
        # Django's add/change/delete/view set would offer an "add" nobody can act on.
        default_permissions = ()
        permissions = [
            ("view_descriptor", "Can read cached blob descriptors and listings"),
            ("change_descriptor", "Can set cached blob descriptors"),
            ("delete_descriptor", "Can clear cached descriptors and repository scopes"),
        ]
        verbose_name = "cached descriptor"
        verbose_name_plural = "cached descriptors"
