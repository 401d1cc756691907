"""Benchmark suite for simplews and its peers.

Run ``python -m benchmarks --help`` from the project root.  Nothing heavy is
imported here: worker processes import this package on start-up, and their
start-up cost must stay small and identical for every library.
"""
