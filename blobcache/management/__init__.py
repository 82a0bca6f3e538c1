"""Management commands of blobcache: thin wrappers over the cache manager and bulk module."""
