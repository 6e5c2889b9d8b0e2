"""eventcount: find when short events happen in recordings, learning from counts alone."""

__version__ = "0.1.0"
