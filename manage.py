#!/usr/bin/env python
"""Django's command-line utility for the demo host project."""

import os
import sys


def needs_redis(argv: list[str]) -> bool:
    """The commands that act on Redis (the blobcache commands, a server, the deploy checks)."""
    command = argv[1] if len(argv) > 1 else ""
    return (
        command.startswith("blobcache_")
        or command == "runserver"
        or (command == "check" and "--deploy" in argv)
    )


def refuse_without_redis(argv: list[str]) -> None:
    """Without REDIS_URL and without bin/serve's embedded Redis there is no Redis to act on:
    say how to name one rather than fail on a connection to nowhere (exit status 2, usage)."""
    from django.conf import settings

    if settings.REDIS_URL is not None or not needs_redis(argv):
        return
    command = argv[1]
    sys.stderr.write(
        f"{command}: no Redis to use. REDIS_URL is not set and the demo's embedded Redis is not "
        f"running (no socket at {settings.EMBEDDED_REDIS_SOCKET}).\n"
        "Start the demo with bin/serve and run commands with bin/manage (same Redis), or name "
        "the registry's Redis:\n"
        f"  REDIS_URL=redis://HOST:6379/0 .venv/bin/python manage.py {command} ...\n"
    )
    sys.exit(2)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.core.management import execute_from_command_line

    refuse_without_redis(sys.argv)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
