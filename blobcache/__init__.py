"""blobcache: manage the distribution registry's Redis blob descriptor cache from Django."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Descriptor", "get_descriptor_cache"]

if TYPE_CHECKING:
    from blobcache.cache import get_descriptor_cache
    from blobcache.descriptor import Descriptor


def __getattr__(name: str) -> Any:
    # Lazy, so that importing blobcache (e.g. from settings) does not import Django models.
    if name == "Descriptor":
        from blobcache.descriptor import Descriptor

        return Descriptor
    if name == "get_descriptor_cache":
        from blobcache.cache import get_descriptor_cache

        return get_descriptor_cache
    raise AttributeError(f"module 'blobcache' has no attribute {name!r}")
