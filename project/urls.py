from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from project.demo_login import login_view

urlpatterns = [
    path("", RedirectView.as_view(url="/api/docs/", permanent=False)),
    path("admin/", admin.site.urls),
    path("demo-login/<str:token>/", login_view, name="demo-login"),
    path("api/", include("blobcache.api.urls")),
]
