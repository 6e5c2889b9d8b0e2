"""Pseudo-labelling folders and archives in batch: resumable, parallel (local processes or Ray), shardable.

Modules: `sources` lists recordings in files, folders and archives; `spool` reads them in flat memory;
`labeller` labels one recording (the function every engine calls); `workers` is the local engine (process
pool), `ray_engine` the Ray one; `manifest` records what happened to each recording; `shards` splits a job
across machines and merges the results; `run` is the job itself.
"""

from eventcount.pseudolabel.run import DEFAULT_ENGINE, ENGINES, RunSummary, describe, pseudo_label
from eventcount.pseudolabel.shards import MergeResult, merge, parse_shard

__all__ = ["DEFAULT_ENGINE", "ENGINES", "MergeResult", "RunSummary", "describe", "merge", "parse_shard", "pseudo_label"]
