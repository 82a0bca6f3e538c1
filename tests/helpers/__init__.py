"""Pieces several test modules share: data, builders and process drivers, never tests.

Test modules import from here (and from ``tests.redis_state`` / ``tests.audit_state``), never from
each other; fixtures live in the conftest files and in the ``blobcache.testing`` plugin.
"""
