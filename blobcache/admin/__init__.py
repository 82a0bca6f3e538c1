"""blobcache's pages in the Django admin.

``admin.site`` gets them when the admin autodiscovers this module. A host with its own
``AdminSite`` calls ``blobcache.admin.register(its_site)``.
"""

from django.contrib import admin

from blobcache.admin.audit import register_audit_log
from blobcache.admin.console import register_console


def register(site: admin.AdminSite) -> None:
    register_audit_log(site)
    register_console(site)


register(admin.site)
