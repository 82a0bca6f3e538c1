"""The REST API: mount with ``path("<prefix>/", include("blobcache.api.urls"))``."""
