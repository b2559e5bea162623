"""audioclf: spoken-word and keyword audio classification experiments."""

__version__ = "0.1.0"
