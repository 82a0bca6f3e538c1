"""Who is acting on the cache, and through which interface.

The audit log and the metrics both need to know whether a clear came from the REST API, the
admin console, a command, the notifications receiver or plain Python, and on whose behalf. The
interface layer sets that once, around the work it starts; everything below reads it, so the
cache manager, the bulk walkers and reconcile stay free of HTTP and command-line notions.

A context variable (not a thread local) so that it follows the work into ``copy_context().run``
when a caller hands it to a worker thread, as the notifications receiver does.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

#: The interfaces an actor can act through; audit rows and metric labels use these names.
API = "api"
ADMIN = "admin"
COMMAND = "command"
NOTIFICATIONS = "notifications"
PYTHON = "python"
INTERFACES = (API, ADMIN, COMMAND, NOTIFICATIONS, PYTHON)


@dataclass(frozen=True)
class Actor:
    """``user`` is a username, ``"<os user> (manage.py)"`` or the registry endpoint's name."""

    interface: str
    user: str = ""


_NOBODY = Actor(PYTHON)
_current: ContextVar[Actor | None] = ContextVar("blobcache_actor", default=None)


def current_actor() -> Actor:
    """Plain Python (a portal's own job, a shell) when no interface said otherwise."""
    return _current.get() or _NOBODY


@contextmanager
def acting_as(interface: str, user: str = "") -> Iterator[Actor]:
    """Everything run inside the block is attributed to ``user`` through ``interface``."""
    if interface not in INTERFACES:
        raise ValueError(f"unknown interface {interface!r}; expected one of {INTERFACES}")
    actor = Actor(interface, user)
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def command_user() -> str:
    """The operating-system user running a management command, as the audit log names it."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        # No passwd entry and no LOGNAME/USER (a container running an arbitrary uid).
        name = "unknown"
    return f"{name} (manage.py)"
