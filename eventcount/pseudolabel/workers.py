"""The local engine: label recordings in this process or in a pool of worker processes, one model load each.

`label_in_process` and `label_in_pool` read recordings one at a time in the calling process
(`spool.iter_readable`: plain files in place, archive members copied to the spool folder) and yield one
`ManifestEntry` each, for the caller to append. The pool keeps at most IN_FLIGHT_PER_JOB recordings per worker
spooled at a time; each spool copy is deleted as soon as its recording is labelled.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import Protocol

from eventcount.errors import EventcountError
from eventcount.pseudolabel.labeller import Labeller, LabelSettings, problem_entry, remove_temp_files
from eventcount.pseudolabel.manifest import ManifestEntry
from eventcount.pseudolabel.sources import Problem, SourceItem, label_name
from eventcount.pseudolabel.spool import Readable, iter_readable
from eventcount.threads import set_threads
from eventcount.writers import get_writer

IN_FLIGHT_PER_JOB = 2
"""Recordings read ahead per worker: enough to keep workers busy, few enough to bound disk and memory."""
MAX_FAILED_STARTS = 3
"""Pools in a row that may break before finishing a recording before the run gives up."""

_WORKER: Labeller | None = None
_WORKER_ERROR: str | None = None


class _WorkerProcess(SpawnProcess):
    """A spawned worker that starts with Ctrl-C ignored, so that only the main process handles it.

    Set before the start, the child inherits it: a Ctrl-C while a worker is still importing prints nothing.
    """

    def start(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            super().start()
            return
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            super().start()
        finally:
            signal.signal(signal.SIGINT, previous)


class _WorkerContext(SpawnContext):
    Process = _WorkerProcess


def _init_worker(settings: LabelSettings) -> None:
    """Pool initializer: one model load per worker, one torch thread (the workers share the cores)."""
    global _WORKER, _WORKER_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    set_threads(1)
    try:
        _WORKER = Labeller(settings)
    except Exception as exc:  # reported with the first task, rather than as a broken pool
        _WORKER_ERROR = str(exc) if isinstance(exc, EventcountError) else f"{type(exc).__name__}: {exc}"


def _work(readable: Readable) -> ManifestEntry:
    if _WORKER is None:
        raise EventcountError(f"a worker could not load the model: {_WORKER_ERROR}")
    return _WORKER(readable)


def label_in_process(todo: list[SourceItem], settings: LabelSettings, spool: Path, max_bytes: int,
                     threads: int = 1) -> Iterator[ManifestEntry]:
    """Read and label recordings one by one in this process on `threads` torch threads (restored afterwards),
    yielding each one's manifest entry."""
    import torch

    labeller = Labeller(settings) if todo else None
    previous = torch.get_num_threads()
    set_threads(threads)
    try:
        for readable in iter_readable(todo, spool, max_bytes):
            if isinstance(readable, Problem):
                yield problem_entry(readable, settings)
                continue
            try:
                entry = labeller(readable)
            finally:
                readable.release()
            yield entry
    finally:
        set_threads(previous)


class _Pool:
    """Worker processes labelling recordings, at most IN_FLIGHT_PER_JOB per worker submitted at a time.

    A worker that dies (killed, out of memory) fails the recordings it may have held, and a fresh pool
    carries on with the rest.
    """

    def __init__(self, settings: LabelSettings, jobs: int) -> None:
        self.settings, self.jobs = settings, jobs
        self.pending: dict[Future[ManifestEntry], Readable] = {}
        self.executor = self._start()
        self.failed_starts = 0  # pools in a row that broke before finishing any recording

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.jobs, mp_context=_WorkerContext(), initializer=_init_worker,
                                   initargs=(self.settings,))

    @property
    def full(self) -> bool:
        return len(self.pending) >= IN_FLIGHT_PER_JOB * self.jobs

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    def submit(self, readable: Readable) -> None:
        self.pending[self.executor.submit(_work, readable)] = readable

    def finished(self) -> list[ManifestEntry]:
        """Wait for at least one recording; return the entries of all that are finished."""
        done, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
        if any(isinstance(future.exception(), BrokenProcessPool) for future in done):
            done, _ = wait(list(self.pending))  # a broken pool fails everything it held, at once
            self._restart(any(future.exception() is None for future in done))
        else:
            self.failed_starts = 0
        return [self._entry(future) for future in done]

    def _restart(self, progressed: bool) -> None:
        self.failed_starts = 0 if progressed else self.failed_starts + 1
        if self.failed_starts >= MAX_FAILED_STARTS:
            raise EventcountError(f"worker processes died {self.failed_starts} times in a row without finishing "
                                  "a recording (out of memory? try fewer --jobs); everything finished so far is "
                                  "kept, re-run to resume")
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._start()

    def _entry(self, future: Future[ManifestEntry]) -> ManifestEntry:
        readable = self.pending.pop(future)
        readable.release()
        error = future.exception()
        if error is None:
            return future.result()
        if not isinstance(error, BrokenProcessPool):
            raise error
        return died_entry(readable, self.settings)

    def stop(self) -> None:
        """Stop now: cancel what is queued, end the workers (Python 3.11 has no public way to kill them) and
        delete the temporary files of the event files they were writing."""
        processes = list((getattr(self.executor, "_processes", None) or {}).values())
        self.executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join()
        suffix = get_writer(self.settings.fmt)[0]
        remove_temp_files(self.settings.outdir, (label_name(r.item.key, suffix) for r in self.pending.values()))
        for readable in self.pending.values():
            readable.release()


def died_entry(readable: Readable, settings: LabelSettings) -> ManifestEntry:
    """The entry of a recording whose worker died while it was queued or being labelled."""
    item = readable.item
    return ManifestEntry(item.key, item.source, item.member, "error", "a worker process died while this "
                         "recording was queued or being labelled (out of memory?); re-run to retry",
                         model=settings.model_name, model_sha256=settings.model_sha256)


class Fleet(Protocol):
    """Workers that label recordings handed to them (the local pool, Ray actors): what `feed` drives."""

    @property
    def full(self) -> bool: ...  # no more recordings may be handed over until some are finished

    @property
    def busy(self) -> bool: ...  # some recordings are not finished yet

    def submit(self, readable: Readable) -> None: ...

    def finished(self) -> list[ManifestEntry]: ...  # waits for at least one

    def stop(self) -> None: ...  # ends the workers, deletes what unfinished recordings left


def feed(fleet: Fleet, todo: list[SourceItem], settings: LabelSettings, spool: Path,
         max_bytes: int) -> Iterator[ManifestEntry]:
    """Read recordings one by one in this process and hand them to `fleet`; entries come finished first.

    Closing the generator (or Ctrl-C while it waits) stops the fleet.
    """
    try:
        for readable in iter_readable(todo, spool, max_bytes):
            if isinstance(readable, Problem):
                yield problem_entry(readable, settings)
                continue
            while fleet.full:
                yield from fleet.finished()
            fleet.submit(readable)
        while fleet.busy:
            yield from fleet.finished()
    finally:
        fleet.stop()


def label_in_pool(todo: list[SourceItem], settings: LabelSettings, jobs: int, spool: Path,
                  max_bytes: int) -> Iterator[ManifestEntry]:
    """Label recordings in `jobs` worker processes (see `feed`)."""
    return feed(_Pool(settings, jobs), todo, settings, spool, max_bytes)
