"""Baseline workers the comparison runs in their own processes (so RSS is theirs alone)."""
