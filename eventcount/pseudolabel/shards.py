"""Sharding a job across machines: which shard a recording belongs to, each shard's record, merging shards.

`--shard I/N` keeps the recordings whose key hashes to I (the same on every machine). Each run writes
`shard-I-of-N.json` (the keys it was given) so that `merge` can report recordings that no shard labelled
and whole shards that never ran.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from eventcount.atomic import atomic_write
from eventcount.errors import EventcountError
from eventcount.pseudolabel.manifest import MANIFEST_NAME, MergeReport, merge_manifests, write_merged_manifest

SHARD_FILE = "shard-{index}-of-{count}.json"
_SHARD_FILE_PATTERN = re.compile(r"^shard-(\d+)-of-(\d+)\.json$")


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


Keyed = TypeVar("Keyed", bound=_Keyed)


def parse_shard(text: str) -> tuple[int, int]:
    """Parse `--shard INDEX/COUNT` with a 0-based index (`0/4` .. `3/4`), as scheduler array indices are."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise EventcountError(f"--shard {text!r}: expected INDEX/COUNT with a 0-based index, e.g. 0/4 ... 3/4")
    index, count = int(match[1]), int(match[2])
    _check_shard(index, count)
    return index, count


def _check_shard(index: int, count: int) -> None:
    if count < 1:
        raise EventcountError(f"--shard {index}/{count}: COUNT must be at least 1 (INDEX/COUNT, INDEX 0-based)")
    if not 0 <= index < count:
        raise EventcountError(f"--shard {index}/{count}: INDEX is 0-based, so with {count} shards it must be "
                              f"0 to {count - 1}")


def shard_of(key: str, count: int) -> int:
    """The shard (0-based) that `key` belongs to among `count`: SHA-256 of the key, the same on every machine."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select_shard(items: Iterable[Keyed], index: int, count: int) -> list[Keyed]:
    """The items (recordings or problems) of shard `index` of `count`, in their given order.

    Membership depends only on each key, so the shards never overlap and together hold everything, even if
    the machines list slightly different sets. Shards are balanced only statistically.
    """
    _check_shard(index, count)
    return [item for item in items if shard_of(item.key, count) == index]


def shard_file_name(shard: tuple[int, int] | None) -> str:
    """`shard-I-of-N.json` (`shard-0-of-1.json` for an unsharded run)."""
    index, count = shard or (0, 1)
    return SHARD_FILE.format(index=index, count=count)


def write_shard_record(outdir: Path, shard: tuple[int, int] | None, listed: int, keys: Iterable[str]) -> None:
    """Record (atomically) the keys this shard was given, for `merge` to find what no shard labelled."""
    index, count = shard or (0, 1)
    record = {"format": "eventcount-pseudolabel-shard", "version": 1, "shard": [index, count],
              "listed": listed, "keys": sorted(keys)}
    with atomic_write(outdir / shard_file_name(shard), "w") as handle:
        json.dump(record, handle, ensure_ascii=False)


# ---------------------------------------------------------------- merging shards

@dataclass
class MergeResult:
    """Shard manifests combined (see manifest.MergeReport), plus shards that no given folder holds."""

    report: MergeReport
    path: Path
    missing_shards: list[str] = field(default_factory=list)
    without_manifest: list[Path] = field(default_factory=list)

    @property
    def all_ok(self) -> bool:
        return self.report.all_ok and not self.missing_shards and not self.without_manifest


def _shard_records(folder: Path, warnings: list[str]) -> list[dict[str, Any]]:
    records = []
    for path in sorted(folder.glob("shard-*-of-*.json")):
        if not _SHARD_FILE_PATTERN.match(path.name):
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            record["shard"] = tuple(int(x) for x in record["shard"])
            record["keys"] = [str(key) for key in record["keys"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.append(f"{path}: unreadable shard record ({exc}); its missing recordings cannot be named")
            continue
        records.append(record)
    return records


def _missing_shards(records: list[dict[str, Any]], warnings: list[str]) -> list[str]:
    seen: dict[int, set[int]] = {}
    for record in records:
        index, count = record["shard"]
        seen.setdefault(count, set()).add(index)
    if len(seen) > 1:
        warnings.append(f"the folders hold shards of different splits ({', '.join(f'/{n}' for n in sorted(seen))})")
    if len({record["listed"] for record in records}) > 1:
        warnings.append("the shards listed different numbers of recordings: did the sources change between runs?")
    return [f"{index}/{count}" for count, found in sorted(seen.items()) for index in range(count)
            if index not in found]


def merge(outdirs: Sequence[str | Path], out: str | Path) -> MergeResult:
    """Combine the manifests of shard output folders into `out` (a folder, or a `.jsonl` manifest path).

    Recordings that a shard was given but did not label are reported missing, and so are whole shards of
    the split (e.g. 1/3) that none of the folders holds. Event files stay where they are: the merged
    manifest's `output` paths point at them.
    """
    out = Path(out)
    target = out if out.suffix == ".jsonl" else out / MANIFEST_NAME
    folders = [Path(item) if Path(item).is_dir() else Path(item).parent for item in outdirs]
    if target.resolve() in {(folder / MANIFEST_NAME).resolve() for folder in folders}:
        raise EventcountError(f"-o {out}: that is one of the manifests being merged; choose another place")
    warnings: list[str] = []
    records = [record for folder in folders for record in _shard_records(folder, warnings)]
    expected = {key for record in records for key in record["keys"]} if records else None
    report = merge_manifests(outdirs, expected)
    report.warnings += warnings
    missing_shards = _missing_shards(records, report.warnings)
    write_merged_manifest(report, target)
    without = [Path(item) for item in outdirs if not (Path(item) / MANIFEST_NAME if Path(item).is_dir()
                                                       else Path(item)).is_file()]
    return MergeResult(report, target, missing_shards, without)
