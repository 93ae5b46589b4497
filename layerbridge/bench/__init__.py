"""Benchmarks: our training/evaluation steps against the naive reference design, FLOPs and MFU."""
