"""What every blobcache command shares: exit statuses, signals, output and progress.

Exit statuses are a contract (listed in :mod:`blobcache.exceptions`, where each error carries
its own): 0 success; 1 unknown digests, a corrupt entry, unreadable storage or a refused
confirmation; 2 invalid input or usage; 3 Redis unavailable; 128 + the signal number after
SIGINT (130) or SIGTERM (143). Failures are raised as ``CommandError(returncode=...)`` so that
``call_command`` callers see them too; on the command line the message is printed as one
line, without Django's ``CommandError:`` prefix, so that "cannot reach Redis at host:port: ..."
is exactly what an operator (or a script grepping stderr) reads.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError, CommandParser

from blobcache import actor, audit
from blobcache.bulk import Progress
from blobcache.cache import DescriptorCache, get_descriptor_cache
from blobcache.digest import validate_digest
from blobcache.engine import signal_handlers
from blobcache.exceptions import (
    EXIT_PARTIAL,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    BlobCacheError,
    CacheUnavailable,
    DigestInvalid,
)
from blobcache.models import REFUSED

# The exit statuses are defined with the errors; commands take them from here with the rest.
__all__ = [
    "EXIT_PARTIAL",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "MAX_BATCH_SIZE",
    "BlobcacheCommand",
    "ClearCounts",
    "batch_size",
    "confirm",
    "integer",
    "non_negative_int",
    "plural",
    "positive_int",
    "read_digest_file",
    "summary",
    "validated_digests",
]

_INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


#: A batch is one script call: its keys and arguments are held in Redis's memory at once and the
#: call blocks the server while it runs, so a batch far above the default only hurts.
MAX_BATCH_SIZE = 100_000


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def positive_int(text: str) -> int:
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def non_negative_int(text: str) -> int:
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def batch_size(text: str) -> int:
    value = positive_int(text)
    if value > MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(f"{value} is more than {MAX_BATCH_SIZE:,}")
    return value


class _UsageParser(CommandParser):
    """Usage errors exit with status 2 under ``call_command`` too, as argparse does in a shell."""

    def error(self, message: str) -> Any:
        if self.called_from_command_line:
            super().error(message)
        raise CommandError(f"Error: {message}", returncode=EXIT_USAGE)


class BlobcacheCommand(BaseCommand):
    """Base class: maps blobcache's errors and signals to the contract's exit statuses."""

    # Only the cache configuration is checked: clearing a cache during an incident must not
    # depend on unrelated apps' checks (URLs, admin, templates) passing, nor wait for them.
    requires_system_checks = [Tags.caches]

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = _UsageParser
        return parser

    def add_format_argument(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--format",
            choices=("text", "json"),
            default="text",
            help="Output format (default: text).",
        )

    def add_confirmation_arguments(
        self,
        parser: CommandParser,
        dry_run_help: str = "Count what would be cleared; change nothing.",
    ) -> None:
        """The options of every command that deletes: a dry run, and no confirmation prompt."""
        parser.add_argument("--dry-run", action="store_true", help=dry_run_help)
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation.",
        )

    def add_clear_arguments(self, parser: CommandParser) -> None:
        """The options every clearing command takes: dry run, no input, format, batch size."""
        self.add_confirmation_arguments(parser)
        self.add_format_argument(parser)
        parser.add_argument(
            "--batch-size",
            type=batch_size,
            default=1000,
            metavar="N",
            help=f"Entries per atomic batch and SCAN step, 1 to {MAX_BATCH_SIZE:,} "
            "(default: 1000).",
        )

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except CommandError as error:
            if not getattr(self, "_called_from_command_line", False) or options.get("traceback"):
                raise
            self.stderr.write(str(error))
            sys.exit(error.returncode)

    def handle(self, *args: Any, **options: Any) -> None:
        self.interrupted_by: int | None = None
        with self._interrupts_raise(), actor.acting_as(actor.COMMAND, actor.command_user()):
            try:
                self.run(*args, **options)
            except KeyboardInterrupt:
                raise CommandError("interrupted", returncode=self.interrupt_status()) from None
            except BlobCacheError as error:
                raise CommandError(self._message(error), returncode=error.exit_status) from None

    def run(self, *args: Any, **options: Any) -> None:
        raise NotImplementedError

    # --- helpers for subclasses ---

    @property
    def cache(self) -> DescriptorCache:
        return get_descriptor_cache()

    def interrupt_status(self) -> int:
        return 128 + (self.interrupted_by or signal.SIGINT)

    def interrupt_name(self) -> str:
        return signal.Signals(self.interrupted_by or signal.SIGINT).name

    def stop_if_interrupted(self, result: ClearCounts) -> None:
        """After an interrupted clear (its summary already printed): say how far it got, on
        standard error, and end with 130 or 143."""
        if not result.interrupted:
            return
        done = "counted" if result.dry_run else "cleared"
        raise CommandError(
            f"interrupted by {self.interrupt_name()}: {done} "
            f"{plural(result.cleared, 'descriptor entry', 'descriptor entries')} "
            f"({plural(result.keys_deleted, 'key', 'keys')}) before stopping; "
            "run the same command again to finish",
            returncode=self.interrupt_status(),
        )

    def confirm_recorded(
        self, options: dict[str, Any], question: str, operation: str, **fields: Any
    ) -> None:
        """Ask before a real clear run interactively; a refusal is recorded in the audit log as
        ``operation`` with outcome ``refused``. A dry run changes nothing and never asks."""
        if not options["interactive"] or options["dry_run"]:
            return
        try:
            confirm(self, question)
        except CommandError as error:
            audit.record(operation, outcome=REFUSED, detail=str(error), **fields)
            raise

    def print_json(self, value: Any) -> None:
        self.stdout.write(json.dumps(value))

    @contextmanager
    def progress_bar(self, total: Callable[[], int], unit: str) -> Iterator[Progress | None]:
        """A tqdm bar on standard error when it is a terminal; nothing in pipes and logs.

        ``total`` is only called for a bar, so that no Redis call is spent on it otherwise.
        """
        if not _is_terminal(sys.stderr):
            yield None
            return
        from tqdm import tqdm

        with tqdm(total=total() or None, unit=unit, file=sys.stderr, leave=False) as bar:
            yield bar.update

    # --- internals ---

    @contextmanager
    def _interrupts_raise(self) -> Iterator[None]:
        """SIGTERM stops a command the way Ctrl-C does, remembering which signal it was."""
        def interrupt(signum: int, frame: Any) -> None:
            if self.interrupted_by is None:
                self.interrupted_by = signum
            raise KeyboardInterrupt

        with signal_handlers(_INTERRUPTS, interrupt):
            yield

    def _message(self, error: BlobCacheError) -> str:
        # Only an outage's reason comes from the Redis driver, which may echo a URL.
        return self._scrub(str(error)) if isinstance(error, CacheUnavailable) else str(error)

    def _scrub(self, message: str) -> str:
        # The message names host:port only, but a reason could echo a URL: never show a password.
        try:
            password = get_descriptor_cache().client.connection_pool.connection_kwargs.get(
                "password"
            )
        except Exception:  # noqa: BLE001 - a message is being built; nothing may fail here
            password = None
        if password:
            message = message.replace(password, "***")
        # One line, whatever the driver put in its reason.
        return " ".join(message.splitlines())


class ClearCounts(Protocol):
    """What a clearing run reports, whichever operation it was (a clear, a reconciliation)."""

    @property
    def dry_run(self) -> bool: ...

    @property
    def interrupted(self) -> bool: ...

    @property
    def cleared(self) -> int: ...

    @property
    def keys_deleted(self) -> int: ...


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def summary(result: ClearCounts) -> str:
    """The first line of a clearing command's report, without its closing punctuation."""
    entries = plural(result.cleared, "descriptor entry", "descriptor entries")
    keys = plural(result.keys_deleted, "key", "keys")
    if result.dry_run:
        return f"Dry run: would clear {entries} and delete {keys}"
    return f"Cleared {entries}, deleted {keys}"


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def confirm(command: BaseCommand, question: str) -> None:
    """Ask on a terminal and accept ``yes`` only; refuse outright without a terminal."""
    if not _is_terminal(sys.stdin):
        raise CommandError(
            f"refusing to {question} without confirmation: standard input is not a terminal "
            "(pass --no-input to proceed)",
            returncode=EXIT_PARTIAL,
        )
    command.stderr.write(f"This will {question}. Type 'yes' to continue: ", ending="")
    command.stderr.flush()
    answer = sys.stdin.readline()
    if answer.strip() != "yes":
        raise CommandError("cancelled: nothing was cleared", returncode=EXIT_PARTIAL)


def validated_digests(digests: Iterable[str], source: str = "") -> list[str]:
    """Every digest validated before anything is sent; the error names the offending one."""
    checked = []
    for digest in digests:
        try:
            checked.append(validate_digest(digest))
        except DigestInvalid as error:
            raise CommandError(f"{source}{digest!r}: {error}", returncode=EXIT_USAGE) from None
    return checked


def read_digest_file(path: str) -> list[str]:
    """Digests one a line from ``path`` (``-``: standard input), validated.

    Whitespace and CR are stripped; blank lines and lines starting with ``#`` are skipped.
    """
    try:
        if path == "-":
            return _digest_lines(sys.stdin, "<stdin>")
        with open(path, encoding="utf-8") as stream:
            return _digest_lines(stream, path)
    except OSError as error:
        raise CommandError(
            f"cannot read {path}: {error.strerror or error}", returncode=EXIT_USAGE
        ) from None
    except UnicodeDecodeError as error:
        raise CommandError(
            f"cannot read {path}: not UTF-8 text ({error.reason})", returncode=EXIT_USAGE
        ) from None


def _digest_lines(stream: Iterable[str], name: str) -> list[str]:
    digests = []
    for number, line in enumerate(stream, start=1):
        text = line.strip()
        if text and not text.startswith("#"):
            digests += validated_digests([text], source=f"{name}:{number}: ")
    return digests
