"""The Ray engine: label recordings on Ray actors (one model load each), read and recorded by this driver.

The driver lists, reads and records exactly as with the local engine: archives are streamed once, members are
spooled one at a time into the run's spool folder (`run.spool_path`, inside OUT), and every manifest line is
appended here after the actor has written the event file atomically. Actors call the same `Labeller` as
local workers, so outputs, manifest and exit code are the same.

Where the data travels: actors read recordings by path and write event files into OUT themselves; nothing
but paths and manifest entries passes through Ray. On one machine that needs nothing more. On a multi-node
cluster, the sources and OUT (which holds the spool folder) must be at the same path on every node — a
shared file system, as Ray clusters on Slurm or Kubernetes with NFS have. Passing member bytes through
Ray's object store would spare that for the inputs, but the outputs would still need a shared OUT or a second
path back, for no gain on the clusters this is meant for.

A recording whose actor dies (killed, out of memory) is retried once on a fresh actor, then reported as an
"error" entry; none is lost or recorded twice.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventcount.errors import EventcountError
from eventcount.pseudolabel.labeller import Labeller, LabelSettings, remove_temp_files
from eventcount.pseudolabel.manifest import ManifestEntry
from eventcount.pseudolabel.sources import SourceItem, label_name
from eventcount.pseudolabel.spool import Readable
from eventcount.pseudolabel.workers import IN_FLIGHT_PER_JOB, MAX_FAILED_STARTS, died_entry, feed
from eventcount.writers import get_writer

RAY_MISSING = 'the Ray engine needs Ray, which is not installed: pip install "eventcount[ray]"'
TEST_EXIT_ON = "EVENTCOUNT_TEST_RAY_EXIT_ON"
"""For the tests only: an actor given the recording with this key exits abruptly, as a killed worker would
(once only, when EVENTCOUNT_TEST_RAY_EXIT_ONCE names a marker file, which the first exit creates)."""
TEST_EXIT_ONCE = "EVENTCOUNT_TEST_RAY_EXIT_ONCE"


def check_ray() -> None:
    """EventcountError saying what to install when Ray is missing."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise EventcountError(RAY_MISSING) from None


class LabelActor:
    """A Ray actor (made remote in `_Fleet`): one model load, then one recording per call."""

    def __init__(self, settings: LabelSettings) -> None:
        from eventcount.threads import set_threads

        set_threads(1)  # one actor is one CPU of the cluster
        self.labeller: Labeller | None = None
        self.error: str | None = None
        try:
            self.labeller = Labeller(settings)
        except Exception as exc:  # reported by ready(), rather than as a dead actor
            self.error = str(exc) if isinstance(exc, EventcountError) else f"{type(exc).__name__}: {exc}"

    def ready(self) -> str | None:
        """None once the model is loaded, else why it could not be."""
        return self.error

    def label(self, readable: Readable) -> ManifestEntry:
        _test_exit(readable.item.key)
        assert self.labeller is not None, "label() called although ready() reported an error"
        return self.labeller(readable)


def _test_exit(key: str) -> None:
    if os.environ.get(TEST_EXIT_ON) != key:
        return
    marker = os.environ.get(TEST_EXIT_ONCE)
    if marker:
        try:
            Path(marker).touch(exist_ok=False)
        except FileExistsError:
            return
    os._exit(1)


@dataclass
class _Task:
    readable: Readable
    slot: int
    attempt: int = 0


class _Fleet:
    """`workers` label actors, each given one recording at a time, IN_FLIGHT_PER_JOB per actor read ahead.

    One at a time, a dead actor's recording is known for certain: it is retried once on a fresh actor, then
    reported. (Queueing several per actor would blame an innocent one: a result can die with its actor.)
    """

    def __init__(self, settings: LabelSettings, workers: int) -> None:
        import ray

        options: dict[str, Any] = {"num_cpus": 1, "max_restarts": 0}
        hook = {name: os.environ[name] for name in (TEST_EXIT_ON, TEST_EXIT_ONCE) if name in os.environ}
        if hook:
            options["runtime_env"] = {"env_vars": hook}
        self.remote = ray.remote(LabelActor).options(**options)
        self.settings = settings
        self.actors = [self.remote.remote(settings) for _ in range(workers)]
        self.running: dict[Any, _Task] = {}
        self.waiting: deque[tuple[Readable, int]] = deque()
        self.failed_starts = 0  # actors that died in a row without a recording finished in between
        self._check_ready(self.actors)

    def _check_ready(self, actors: list[Any]) -> None:
        import ray

        for error in ray.get([actor.ready.remote() for actor in actors]):
            if error is not None:
                raise EventcountError(f"a worker could not load the model: {error}")

    @property
    def busy(self) -> bool:
        return bool(self.running or self.waiting)

    @property
    def full(self) -> bool:
        return len(self.running) + len(self.waiting) >= IN_FLIGHT_PER_JOB * len(self.actors)

    def submit(self, readable: Readable, attempt: int = 0) -> None:
        self.waiting.append((readable, attempt))
        self._dispatch()

    def _dispatch(self) -> None:
        busy = {task.slot for task in self.running.values()}
        for slot in range(len(self.actors)):
            if slot not in busy and self.waiting:
                readable, attempt = self.waiting.popleft()
                self.running[self.actors[slot].label.remote(readable)] = _Task(readable, slot, attempt)

    def finished(self) -> list[ManifestEntry]:
        """Wait for at least one recording; return the entries of those finished (a retry is resubmitted)."""
        import ray

        done, _ = ray.wait(list(self.running), num_returns=1)
        entries: list[ManifestEntry] = []
        for ref in done:
            task = self.running.pop(ref)
            try:
                entries.append(ray.get(ref))
                self.failed_starts = 0
            except ray.exceptions.RayActorError:
                self._replace(task.slot)
                if task.attempt < 1:
                    self.waiting.appendleft((task.readable, task.attempt + 1))
                    continue
                entries.append(died_entry(task.readable, self.settings))
            task.readable.release()
        self._dispatch()
        return entries

    def _replace(self, slot: int) -> None:
        self.failed_starts += 1
        if self.failed_starts >= MAX_FAILED_STARTS:
            raise EventcountError(f"Ray workers died {self.failed_starts} times in a row without finishing a "
                                  "recording (out of memory? try fewer --jobs); everything finished so far is "
                                  "kept, re-run to resume")
        self.actors[slot] = self.remote.remote(self.settings)
        self._check_ready([self.actors[slot]])

    def stop(self) -> None:
        """Kill the actors, delete the temporary files of event files being written and the spool copies."""
        import ray

        for actor in self.actors:
            ray.kill(actor)
        suffix = get_writer(self.settings.fmt)[0]
        readables = [task.readable for task in self.running.values()] + [r for r, _ in self.waiting]
        remove_temp_files(self.settings.outdir, (label_name(r.item.key, suffix) for r in readables))
        for readable in readables:
            readable.release()


def _connect(address: str | None, cpus: int) -> bool:
    """Join the cluster at `address`, or start a local one with `cpus` CPUs; True when started here."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                               "log_to_driver": False}
    try:
        if address is None:
            ray.init(num_cpus=cpus, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise EventcountError(f"cannot start or join a Ray cluster{f' at {address}' if address else ''}: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return True


def _workers(jobs: int | None, todo: int) -> int:
    """`jobs` actors (default: one per CPU of the cluster), no more than there are recordings."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 0))
    if jobs is not None and jobs > cpus:
        raise EventcountError(f"--jobs {jobs}: the Ray cluster has only {cpus} CPUs; give fewer")
    return max(1, min(jobs or cpus, todo))


def label_on_ray(todo: list[SourceItem], settings: LabelSettings, jobs: int | None, spool: Path, max_bytes: int,
                 address: str | None = None) -> Iterator[ManifestEntry]:
    """Label recordings on `jobs` Ray actors (default: one per CPU), yielding one manifest entry each.

    The cluster is the one at `address` (or an already initialised one), else a local one with `jobs` CPUs
    (default: this machine's) started here and shut down at the end. Entries come finished first. Closing
    the generator (or Ctrl-C while it waits) kills the actors.
    """
    if not todo:
        return
    import ray

    from eventcount.threads import cpu_count

    started_here = _connect(address, jobs or cpu_count())
    try:
        yield from feed(_Fleet(settings, _workers(jobs, len(todo))), todo, settings, spool, max_bytes)
    finally:
        if started_here:
            ray.shutdown()
