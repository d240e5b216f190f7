"""Read, parse and prepare a large usage file in a second process while this one writes.

On SQLite the database's work runs in a thread of this process that needs the GIL for
every row it binds, so parsing beside it in this process slows both down, and
ingest_parsed has them take turns. A worker process has its own interpreter: it reads,
parses, attributes, prices and classifies the next batch on the other core while this
process writes the current one. Batches come back in file order through a bounded queue
(memory stays flat), each with its own counts and bad rows; an error in the worker (an
unreadable file, say) is raised here as itself. The worker ends when this process ends,
however it ends (a watch on the parent's pipe), so a killed ingest leaves no process.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import queue as queues
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.usage.sources.files import RowError, parse_path
from bot.usage.writer import IngestStats, Preparer, PrepareSetup

# Spawned, never forked: this process has threads (the database driver's) and open
# connections that a forked child would inherit half-copied.
_SPAWN = multiprocessing.get_context("spawn")
# Below this size starting a worker (about a second of imports) costs more than it saves.
MIN_BYTES = 16 * 1024 * 1024
QUEUE_DEPTH = 1  # prepared batches waiting: the worker stays a batch ahead, memory stays flat
_POLL_SECONDS = 1.0


@dataclass
class PreparedBatch:
    rows: dict[bytes, tuple[Any, ...]]
    stats: IngestStats  # what parsing and preparing counted: read, rejected, unattributed
    errors: list[RowError] = field(default_factory=list)


@dataclass
class _Failed:
    error: BaseException


def worthwhile(path: Path, is_sqlite: bool) -> bool:
    """A worker pays off for a large file on SQLite with a second core to run on. (On
    PostgreSQL the database's own processes already use the other core.)"""
    try:
        size = path.stat().st_size
    except OSError:
        return False  # let the ordinary path report the problem
    return is_sqlite and (os.cpu_count() or 1) > 1 and size >= MIN_BYTES


def _exit_with_parent() -> None:
    """End this worker as soon as its parent is gone (kill -9, a crash), whatever it is
    doing: blocked on a full queue, it would otherwise wait forever. The parent holds one
    end of a pipe (multiprocessing's parent sentinel); the other end reads EOF when the
    kernel closes it with the parent."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="tokencoach-parent-watch", daemon=True).start()


def _work(path: str, setup: PrepareSetup, batch_size: int, now: datetime, max_errors: int,
          out: Any) -> None:
    """The worker's whole life: every batch of the file, then None (or what went wrong)."""
    _exit_with_parent()
    try:
        preparer = Preparer(setup)
        raws: list[Any] = []
        lines: list[int] = []
        batch = PreparedBatch({}, IngestStats())
        reported = 0

        def prepared() -> PreparedBatch:
            nonlocal reported
            batch.rows = preparer.prepare(raws, batch.stats, now)
            for note in batch.stats.name_notes(lines)[: max(max_errors - reported, 0)]:
                batch.errors.append(RowError(note.line or 0, note.message))
                reported += 1
            return batch

        for line, item in parse_path(Path(path)):
            if isinstance(item, RowError):
                batch.stats.rejected += 1
                if reported < max_errors:
                    batch.errors.append(item)
                    reported += 1
                continue
            raws.append(item)
            lines.append(line)
            if len(raws) >= batch_size:
                out.put(prepared())
                raws, lines, batch = [], [], PreparedBatch({}, IngestStats())
        out.put(prepared())
        out.put(None)
    except BaseException as exc:  # every failure is handed to the parent
        out.put(_Failed(exc))


class FileWorker:
    """One worker process for one file; take its batches with ``next_batch`` (from a
    thread: it blocks)."""

    def __init__(self, path: Path, setup: PrepareSetup, *, batch_size: int, now: datetime,
                 max_errors: int):
        self._queue = _SPAWN.Queue(maxsize=QUEUE_DEPTH)
        self._process = _SPAWN.Process(
            target=_work, args=(str(path), setup, batch_size, now, max_errors, self._queue),
            name="tokencoach-parse", daemon=True)

    def start(self) -> None:
        self._process.start()

    def next_batch(self) -> PreparedBatch | None:
        """The next batch in file order, None at the end (blocks: call from a thread)."""
        while True:
            try:
                item = self._queue.get(timeout=_POLL_SECONDS)
            except queues.Empty:
                if not self._process.is_alive():
                    raise RuntimeError("the file-parsing process stopped unexpectedly "
                                       f"(exit code {self._process.exitcode})") from None
                continue
            if isinstance(item, _Failed):
                raise item.error
            return item if isinstance(item, PreparedBatch) else None

    def stop(self) -> None:
        """End the worker whether or not it finished (an error here, Ctrl-C)."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._queue.close()
        self._queue.cancel_join_thread()
