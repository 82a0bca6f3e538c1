from django.apps import AppConfig


class BlobCacheConfig(AppConfig):
    name = "blobcache"
    verbose_name = "Blob descriptor cache"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # Imported for their side effects: check registration and the settings receiver.
        from blobcache import checks, receivers  # noqa: F401
