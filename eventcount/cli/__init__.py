"""The `eventcount` command line: each command parses options, calls one library function and shows the result.

One module per command (group); `common` holds the Typer app and what the commands share.
"""

from eventcount.cli import annotate, detect, evaluate, listen, models, prepare, pseudolabel, train  # noqa: F401  (registers the commands)
from eventcount.cli.common import app

__all__ = ["app"]

if __name__ == "__main__":
    app()
