"""Where numba caches compiled kernels (the counting loss's, the GRU's): importing this module settles it before
numba is imported."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "eventcount" / "numba"


def _writable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def _prepare_numba_cache() -> bool:
    """Find a writable place for numba's cache of the compiled kernels; False means compile without caching.

    Order: $NUMBA_CACHE_DIR if writable, the package's __pycache__ (numba's default), else a user cache
    directory, which is then set as NUMBA_CACHE_DIR (and in numba.config when numba is already imported).
    Numba raises at decoration time when no cache location is writable, so this must run before @njit.
    """
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured and _writable_dir(Path(configured)):
        return True
    if _writable_dir(Path(__file__).parent / "__pycache__"):
        return True
    cache_dir = _user_cache_dir()
    if configured or not _writable_dir(cache_dir):
        return False
    os.environ["NUMBA_CACHE_DIR"] = str(cache_dir)
    if "numba" in sys.modules:
        sys.modules["numba"].config.CACHE_DIR = str(cache_dir)
    return True


CACHE = _prepare_numba_cache()
