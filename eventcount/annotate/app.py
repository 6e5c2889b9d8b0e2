"""The annotation session behind the page: what each API call returns, independent of HTTP."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventcount.annotate.clips import ClipList, build_clip_list
from eventcount.annotate.media import MediaReader
from eventcount.annotate.prefill import Proposals
from eventcount.annotate.session import Session
from eventcount.errors import EventcountError

TAP_KEYS = "asdfghjkl"  # one tap key per class, in class order (the home row)


class NotFound(EventcountError):
    """A clip index that is not one of the session's."""


@dataclass
class Annotation:
    """Everything a page request may touch: the clip list, the answers, the media reader and the proposals."""

    clips: ClipList
    session: Session
    media: MediaReader
    proposals: Proposals | None = None

    def state(self) -> dict[str, Any]:
        """The session overview the page loads first."""
        classes = self.session.classes
        return {
            "classes": classes,
            "tap_keys": {name: TAP_KEYS[i] for i, name in enumerate(classes) if i < len(TAP_KEYS)},
            "clips": len(self.clips.clips),
            "answered": self.session.answered(),
            "first_open": self.session.first_open(),
            "window_s": self.clips.window_s,
            "output": self.session.output.name,
            "model": self.proposals.name if self.proposals else None,
            "recordings": [{"name": path.name, "duration_s": round(self.clips.durations_s[i], 3),
                            "sensor": self.clips.sensor(i)} for i, path in enumerate(self.clips.recordings)],
        }

    def _clip(self, index: int):
        if not 0 <= index < len(self.clips.clips):
            raise NotFound(f"no clip {index}; clips are 0 to {len(self.clips.clips) - 1}")
        return self.clips.clips[index]

    def clip(self, index: int) -> dict[str, Any]:
        """One clip: where it is, its saved answer, the model's proposal and the envelope to draw."""
        clip = self._clip(index)
        answer = self.session.answers.get(index)
        return {
            "index": index,
            "recording": clip.recording,
            "name": self.clips.recordings[clip.recording].name,
            "start_s": clip.start_s,
            "end_s": clip.end_s,
            "sensor": self.clips.sensor(clip.recording),
            "answer": {"counts": answer.counts, "taps": self.session.taps_in_clip(index)} if answer else None,
            "proposal": self.proposals.for_clip(clip) if self.proposals else None,
            "no_taps": self.session.no_taps.get(clip.recording),
            "plot": self.media.plot(clip),
        }

    def audio(self, index: int) -> bytes:
        return self.media.wav(self._clip(index))

    def answer(self, index: int, body: Any) -> dict[str, Any]:
        """Save a clip's answer from the page's JSON body: {"counts": [int per class], "taps": [[s, class]...]}."""
        self._clip(index)
        if not isinstance(body, dict) or not isinstance(body.get("counts"), list):
            raise EventcountError('expected a JSON object {"counts": [...], "taps": [[seconds, class], ...]}')
        taps = body.get("taps") or []
        if not isinstance(taps, list) or not all(isinstance(t, list) and len(t) == 2 for t in taps):
            raise EventcountError("taps must be a list of [seconds from the clip's start, class]")
        self.session.answer(index, body["counts"], [(t, str(label)) for t, label in taps])
        return {"saved": True, "answered": self.session.answered(), "first_open": self.session.first_open()}


def open_annotation(recordings: list[Path], output: Path, classes: list[str] | None = None, window_s: float = 2.0,
                    events_dir: Path | None = None, model: str | None = None,
                    sensor_options: dict[str, Any] | None = None, device: str = "cpu") -> Annotation:
    """Cut the recordings into clips, resume the answers saved in `output` (and the event files), and with
    `model` start proposing counts in the background. Classes default to the table's, else the model's."""
    clips = build_clip_list(recordings, window_s, exclude=[output], sensor_options=sensor_options)
    proposals = Proposals(model, clips, [], sensor_options, device) if model else None
    if not classes and not Path(output).exists() and proposals is not None:
        classes = list(proposals.detector.spec.classes)
    session = Session(clips, classes or [], Path(os.path.abspath(output)), events_dir)
    if proposals is not None:
        proposals.classes = session.classes
        proposals.start(session.first_open())
    return Annotation(clips, session, MediaReader(clips, sensor_options), proposals)
