"""Drop resolved objects when the settings they came from change (override_settings, tests)."""

from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from blobcache import metrics
from blobcache.cache import reset_descriptor_cache


@receiver(setting_changed)
def reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("BLOBCACHE", "CACHES"):
        reset_descriptor_cache()
        metrics.switch.reset()
