"""Labelling recordings: a loaded model turns bytes into an event file and a manifest entry, here or in workers.

`Labeller` does one recording. `label_in_process` and `label_in_pool` do many, reading them one at a time in
the calling process (`sources.iter_recording_bytes`) and yielding one `ManifestEntry` each, for the caller to
append; the pool keeps at most IN_FLIGHT_PER_JOB recordings per worker in memory.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import Any

from eventcount.errors import EventcountError
from eventcount.manifest import ManifestEntry
from eventcount.recordings import read_signal
from eventcount.sources import Problem, Recording, iter_recording_bytes, output_name, output_path
from eventcount.writers import get_writer, write_events

IN_FLIGHT_PER_JOB = 2
"""Recordings read ahead per worker: enough to keep workers busy, few enough to bound memory."""
MAX_FAILED_STARTS = 3
"""Pools in a row that may break before finishing a recording before the run gives up."""
_TEMP_FILE = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")  # atomic_write's names (mkstemp, 8 chars)


@dataclass(frozen=True)
class Settings:
    """What every worker needs to label recordings the same way (plain data: sent to worker processes)."""

    model_path: str
    model_name: str
    model_sha256: str
    outdir: str
    fmt: str = "tsv"
    tta: int = 1
    min_confidence: float = 0.0
    sensor_options: dict[str, Any] = field(default_factory=dict)


class Labeller:
    """A loaded detector that labels one recording at a time: bytes -> event file -> manifest entry."""

    def __init__(self, settings: Settings) -> None:
        from eventcount.inference import Detector

        self.settings = settings
        self.detector = Detector.load(settings.model_path)
        if self.detector.info.get("sha256") != settings.model_sha256:
            raise EventcountError(f"{settings.model_path} changed while the run was starting; run it again")
        self.suffix = get_writer(settings.fmt)[0]
        self.sensor_options = {**self.detector.spec.frontend.sensor, **settings.sensor_options}

    def __call__(self, rec: Recording, data: bytes) -> ManifestEntry:
        """Label one recording; any failure becomes an "error" entry so that a batch carries on."""
        started = time.perf_counter()
        entry = ManifestEntry(rec.key, rec.source, rec.member, model=self.settings.model_name,
                              model_sha256=self.settings.model_sha256)
        try:
            entry.duration_s, entry.events, entry.output = self._label(rec, data)
        except EventcountError as exc:
            entry.status, entry.message = "error", str(exc)
        except Exception as exc:  # one bad recording must not end a batch of thousands
            entry.status, entry.message = "error", f"{rec.key}: unexpected {type(exc).__name__}: {exc}"
        entry.seconds = round(time.perf_counter() - started, 4)
        return entry

    def _label(self, rec: Recording, data: bytes) -> tuple[float, dict[str, int], str]:
        settings = self.settings
        recording = read_signal(data, name=rec.key, sensor_options=self.sensor_options)
        if recording.duration_s * self.detector.frame_rate < 1:
            raise EventcountError(f"{rec.key}: too short to label ({recording.duration_s * 1000:.1f} ms, less than "
                                  f"one frame of {1000 / self.detector.frame_rate:g} ms)")
        probs = self.detector.activations(recording, settings.tta)
        events = [e for e in self.detector.decode(probs)
                  if e.confidence is None or e.confidence >= settings.min_confidence]
        target = output_path(settings.outdir, rec.key, self.suffix)
        write_events(target, events, settings.fmt, duration_s=recording.duration_s)
        counts = dict.fromkeys(self.detector.spec.classes, 0)
        for event in events:
            counts[event.label] = counts.get(event.label, 0) + 1
        return round(recording.duration_s, 6), counts, output_name(rec.key, self.suffix)


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


def _init_worker(settings: Settings) -> None:
    """Pool initializer: one model load per worker, one torch thread (the workers share the cores)."""
    global _WORKER, _WORKER_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    import torch

    torch.set_num_threads(1)
    try:
        _WORKER = Labeller(settings)
    except Exception as exc:  # reported with the first task, rather than as a broken pool
        _WORKER_ERROR = str(exc) if isinstance(exc, EventcountError) else f"{type(exc).__name__}: {exc}"


def _work(rec: Recording, data: bytes) -> ManifestEntry:
    if _WORKER is None:
        raise EventcountError(f"a worker could not load the model: {_WORKER_ERROR}")
    return _WORKER(rec, data)


def problem_entry(problem: Problem, settings: Settings) -> ManifestEntry:
    return ManifestEntry.from_problem(problem, settings.model_name, settings.model_sha256)


def label_in_process(todo: list[Recording], settings: Settings, max_bytes: int) -> Iterator[ManifestEntry]:
    """Read and label recordings one by one in this process, yielding each one's manifest entry.

    Like a worker, it runs torch on one thread (restored afterwards): one job is one core, and on a busy
    machine two intra-op threads made a recording ~100x slower (8 s instead of 0.05 s, measured here).
    """
    import torch

    labeller = Labeller(settings) if todo else None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for rec, data in iter_recording_bytes(todo, max_bytes):
            yield problem_entry(data, settings) if isinstance(data, Problem) else labeller(rec, data)
    finally:
        torch.set_num_threads(threads)


class _Pool:
    """Worker processes labelling recordings, at most IN_FLIGHT_PER_JOB per worker submitted at a time.

    A worker that dies (killed, out of memory) fails the recordings it may have held, and a fresh pool
    carries on with the rest.
    """

    def __init__(self, settings: Settings, jobs: int) -> None:
        self.settings, self.jobs = settings, jobs
        self.pending: dict[Future[ManifestEntry], Recording] = {}
        self.executor = self._start()
        self.failed_starts = 0  # pools in a row that broke before finishing any recording

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.jobs, mp_context=_WorkerContext(), initializer=_init_worker,
                                   initargs=(self.settings,))

    @property
    def full(self) -> bool:
        return len(self.pending) >= IN_FLIGHT_PER_JOB * self.jobs

    def submit(self, rec: Recording, data: bytes) -> None:
        self.pending[self.executor.submit(_work, rec, data)] = rec

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
        rec = self.pending.pop(future)
        error = future.exception()
        if error is None:
            return future.result()
        if not isinstance(error, BrokenProcessPool):
            raise error
        return ManifestEntry(rec.key, rec.source, rec.member, "error", "a worker process died while this "
                             "recording was queued or being labelled (out of memory?); re-run to retry",
                             model=self.settings.model_name, model_sha256=self.settings.model_sha256)

    def terminate(self) -> None:
        """Stop now: cancel what is queued, end the workers (Python 3.11 has no public way to kill them) and
        delete the temporary files of the event files they were writing."""
        processes = list((getattr(self.executor, "_processes", None) or {}).values())
        self.executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join()
        suffix = get_writer(self.settings.fmt)[0]
        remove_temp_files(self.settings.outdir, (output_name(rec.key, suffix) for rec in self.pending.values()))


def label_in_pool(todo: list[Recording], settings: Settings, jobs: int, max_bytes: int) -> Iterator[ManifestEntry]:
    """Read recordings one by one in this process and label them in `jobs` workers; entries come finished first.

    Closing the generator (or Ctrl-C while it waits) cancels what is queued and ends the workers.
    """
    pool = _Pool(settings, jobs)
    try:
        for rec, data in iter_recording_bytes(todo, max_bytes):
            if isinstance(data, Problem):
                yield problem_entry(data, settings)
                continue
            while pool.full:
                yield from pool.finished()
            pool.submit(rec, data)
        while pool.pending:
            yield from pool.finished()
    finally:
        pool.terminate()


def remove_temp_files(outdir: str | Path, names: Iterable[str]) -> None:
    """Delete the temporary files that a killed `atomic_write` left for outputs `names` (relative to `outdir`).

    Folders reached through a link that leads out of `outdir` are not looked into.
    """
    root = Path(outdir).resolve()
    by_folder: dict[Path, set[str]] = {}
    for name in names:
        path = Path(outdir) / name
        by_folder.setdefault(path.parent, set()).add(path.name)
    for folder, targets in by_folder.items():
        if folder.resolve().is_relative_to(root):
            _remove_temps_in(folder, targets)


def _remove_temps_in(folder: Path, targets: set[str]) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for item in entries:
        match = _TEMP_FILE.match(item.name)
        if match and match["target"] in targets and item.is_file(follow_symlinks=False):
            Path(item.path).unlink(missing_ok=True)
