"""Detecting several recordings, in this process or in worker processes (`detect -j N`), in input order.

Each job is one recording and, optionally, the file its events go to; a worker loads the model once and calls
`detection.detect_recording` for each job. A failed recording becomes an error in its result, never the end
of the batch.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from eventcount.config import DEFAULT_FORMAT
from eventcount.errors import EventcountError

_detector = None  # the worker process's loaded model


@dataclass(frozen=True)
class Job:
    """One recording to detect; its events go to `target` (None: returned as text) in `fmt`."""

    recording: Path
    target: Path | None
    fmt: str = DEFAULT_FORMAT
    activations: Path | None = None  # where to save the probabilities, if wanted


@dataclass
class Result:
    job: Job
    text: str | None = None  # the events, when the job has no target
    error: str | None = None
    warning: str | None = None


def run_job(detector, job: Job, settings) -> Result:
    """Detect one recording and write (or return) its events; errors are returned, not raised."""
    from eventcount.detection import detect_recording, detection_text, save_detection_activations, write_detection

    result = Result(job, warning=detector.low_rate_note(job.recording))
    try:
        detection = detect_recording(detector, job.recording, settings)
        if job.activations is not None:
            save_detection_activations(detection, job.activations)
        if job.target is None:
            result.text = detection_text(detection, job.fmt)
        else:
            write_detection(detection, job.target, job.fmt)
    except EventcountError as error:
        result.error = str(error)
    return result


def detect_all(detector, jobs: list[Job], settings, processes: int = 1, threads: int = 1) -> Iterator[Result]:
    """Results of `jobs` in order: here with `detector`, or from `processes` worker processes that load the same
    model file; `threads` torch/numba threads in each."""
    from eventcount.threads import set_threads

    if processes <= 1 or len(jobs) <= 1:
        set_threads(threads)
        for job in jobs:
            yield run_job(detector, job, settings)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, context, initializer=_start_worker,
                             initargs=(detector.info["path"], detector.device, threads)) as pool:
        yield from pool.map(_work, jobs, [settings] * len(jobs))


def _start_worker(model: str | Path | None, device: str, threads: int) -> None:
    global _detector
    from eventcount.detection import Detector
    from eventcount.threads import set_threads

    set_threads(threads)
    _detector = Detector.load(model, device)


def _work(job: Job, settings) -> Result:
    return run_job(_detector, job, settings)


def make_jobs(recordings: list[Path], output: Path | None, fmt: str, to_file: bool,
              activations: bool = False) -> list[Job]:
    """A job per recording. `output`: None (events as text), a file (`to_file`, one recording) or a folder that
    gets `<stem><format suffix>` per recording. Activations go beside the events, named after their file."""
    from eventcount.detection import output_path
    from eventcount.writers import get_writer

    jobs = []
    for recording in recordings:
        if output is None:
            target, npz = None, Path(f"{recording.stem}.activations.npz")
        elif to_file:
            suffix = get_writer(fmt)[0]
            stem = output.name[: -len(suffix)] if output.name.endswith(suffix) else output.stem
            target, npz = output, output.with_name(f"{stem}.activations.npz")
        else:
            target, npz = output_path(output, recording, fmt), output / f"{recording.stem}.activations.npz"
        jobs.append(Job(recording, target, fmt, npz if activations else None))
    return jobs
