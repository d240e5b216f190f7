"""tokencoach: the platform-neutral core, its store and its platform adapters."""

__version__ = "0.1.0"
