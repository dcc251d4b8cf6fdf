"""Benchmarks: ``python -m bench …`` starts real nats-server processes and prints tables."""
