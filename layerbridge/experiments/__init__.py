"""Experiments built from the library: fusion comparisons and the paper-reproduction study."""
