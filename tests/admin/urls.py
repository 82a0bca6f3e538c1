"""A host with its own AdminSite next to Django's default one."""

from django.contrib import admin
from django.contrib.admin import AdminSite
from django.urls import path

import blobcache.admin

operations = AdminSite(name="operations")
blobcache.admin.register(operations)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("ops/", operations.urls),
]
