"""Running a command in-process and collecting what it printed and how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO

from django.core.management import call_command
from django.core.management.base import CommandError


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str


def run(*args: str) -> Outcome:
    """``call_command`` with captured output; the status is the CommandError's returncode."""
    stdout, stderr = StringIO(), StringIO()
    status = 0
    try:
        call_command(*args, stdout=stdout, stderr=stderr)
    except CommandError as error:
        status = error.returncode
        stderr.write(f"{error}\n")
    return Outcome(status, stdout.getvalue(), stderr.getvalue())
