"""The shipped models: plain-data model files (`*.pt`) and their cards (`*.md`); installed as `eventcount.models`."""
