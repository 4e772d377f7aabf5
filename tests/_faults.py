"""Fault injection for the crash-safety tests: stop a write sequence at any one of its steps.

A *write step* is a call to ``os.fsync`` (a file's bytes are complete, not yet in place) or to
``os.replace`` (a file is put in place). Every durable write of the library goes through
``atomic_write`` (temp file → fsync → rename) or a rename of its own, so stopping at step ``k``
for every ``k`` covers a crash between any two writes. The crash is a :class:`Crash`, a
``BaseException`` as ``KeyboardInterrupt`` is, so no ``except Exception`` in the code under test
can swallow it, and nothing after it runs but ``finally`` blocks (which only delete temp files,
files a real kill would leave behind unread). ``kill=True`` ends the process on the spot
instead (``os._exit``, as a SIGKILL would: no cleanup at all), for tests in a subprocess.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

KILLED = 137  # the exit status of a process killed with SIGKILL


class Crash(BaseException):
    """The simulated kill."""


@contextmanager
def crash_at(step: int | None, kill: bool = False) -> Iterator[list[str]]:
    """Count write steps, raising :class:`Crash` (``kill``: exiting with status ``KILLED``)
    instead of running step ``step`` (0-based).

    Yields the list of steps run so far (``"fsync"``/``"replace:<name>"``); ``step=None``
    only counts.
    """
    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def guard(label: str) -> None:
        if step is not None and len(steps) == step:
            if kill:
                os._exit(KILLED)
            raise Crash(f"crash before step {step} ({label})")
        steps.append(label)

    def fsync(fd: int) -> None:
        guard("fsync")
        real_fsync(fd)

    def replace(src, dst, *args, **kwargs) -> None:
        guard(f"replace:{Path(dst).name}")
        real_replace(src, dst, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", fsync)
        patch.setattr(os, "replace", replace)
        yield steps


def count_steps(action: Callable[[], object]) -> int:
    """How many write steps ``action`` takes."""
    with crash_at(None) as steps:
        action()
    return len(steps)


def crash_during(action: Callable[[], object], step: int) -> None:
    """Run ``action``, killed before its write step ``step``."""
    with crash_at(step), pytest.raises(Crash):
        action()


def snapshot(directory: Path) -> dict[str, bytes]:
    """``{relative path: bytes}`` of the files under ``directory``."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }
