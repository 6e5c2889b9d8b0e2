"""Counting in the browser: `eventcount annotate` serves a local page that walks through recordings clip by clip.

`open_annotation(...)` builds the session (clips, saved answers, optional model proposals); `serve(...)` runs
the page until Ctrl-C. Every answer is written at once to the count table and, for taps, to event files.
"""

from eventcount.annotate.app import Annotation, open_annotation
from eventcount.annotate.server import AnnotationServer, serve

__all__ = ["Annotation", "AnnotationServer", "open_annotation", "serve"]
