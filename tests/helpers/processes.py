"""Driving ``manage.py`` as an operator does: a real process, real signals, a real terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import redis

from tests.helpers.entries import LAYER

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"


def manage(
    url: str, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "REDIS_URL": url},
        cwd=MANAGE.parent,
        timeout=timeout,
        check=False,
    )


def start(url: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(MANAGE), *args],
        env={**os.environ, "REDIS_URL": url},
        cwd=MANAGE.parent,
        text=True,
        **popen,
    )


def populate(client: redis.Redis, repositories: int, members: int) -> None:
    """``members`` whole entries spread over ``repositories``, large enough to interrupt."""
    with client.pipeline(transaction=False) as pipe:
        for n in range(members):
            member = f"sha256:{n:064x}"
            repository = f"load/repo{n % repositories}"
            pipe.hset(f"blobs::{member}", mapping={"digest": member, "size": n, "mediatype": LAYER})
            pipe.sadd(f"repository::{repository}::blobs", member)
            pipe.hset(f"repository::{repository}::blobs::{member}", "mediatype", LAYER)
            if len(pipe) >= 3000:
                pipe.execute()
        pipe.execute()


def assert_whole_entries(client: redis.Redis, repositories: int) -> None:
    """No membership without its hash, no hash without its membership."""
    for n in range(repositories):
        members = client.smembers(f"repository::load/repo{n}::blobs")
        hashes = {
            key.rsplit("::", 1)[1]
            for key in client.scan_iter(f"repository::load/repo{n}::blobs::*", count=1000)
        }
        assert members == hashes


def interrupted(url: str, args: list[str], started: Any, signum: int) -> tuple[int, str, str]:
    """A large command (``args``: its name and options) in small batches, as JSON, sent
    ``signum`` once it has begun."""
    process = start(
        url,
        *args,
        "--no-input",
        "--batch-size",
        "10",
        "--format",
        "json",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    signal_when(process, started, signum)
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr


#: The membership set of the repository ``interrupted_in_repository`` fills.
LOAD_MEMBERSHIP = "repository::load/repo0::blobs"


def interrupted_in_repository(
    url: str, client: redis.Redis, args: list[str], signum: int
) -> tuple[int, str, str]:
    """``interrupted`` on load/repo0 holding 60,000 members, once the first of them is gone:
    enough batches that the signal lands mid-way."""
    populate(client, repositories=1, members=60_000)
    return interrupted(url, args, lambda: client.scard(LOAD_MEMBERSHIP) < 60_000, signum)


def signal_when(process: subprocess.Popen[str], started: Any, signum: int) -> None:
    """Send ``signum`` once ``started()`` holds, while the process still runs."""
    deadline = time.monotonic() + 30
    while not started():
        assert process.poll() is None, "the command ended before the signal"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    assert process.poll() is None, "the command ended before the signal"
    process.send_signal(signum)


def run_on_terminal(url: str, args: list[str], answer: str) -> tuple[int, str, str]:
    """``manage.py args`` on a pseudo-terminal, answering its confirmation prompt ``answer``."""
    controller, terminal = pty.openpty()
    # A fresh pty is 0 columns wide, where tqdm draws nothing: give it a real size.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = start(url, *args, stdin=terminal, stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    seen = b""
    answered = False
    while True:
        ready, _, _ = select.select([controller], [], [], 30)
        assert ready, f"no output from the command: {seen!r}"
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        seen += chunk
        if not answered and b"Type 'yes' to continue: " in seen:
            os.write(controller, answer.encode() + b"\n")
            answered = True
    assert process.stdout is not None
    stdout = process.stdout.read()
    process.wait(timeout=30)
    os.close(controller)
    return process.returncode, stdout, seen.decode(errors="replace")
