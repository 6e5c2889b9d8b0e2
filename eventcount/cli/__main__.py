"""`python -m eventcount.cli`: the command line (as the `eventcount` script)."""

from eventcount.cli import app

app(prog_name="eventcount")
