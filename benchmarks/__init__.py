"""Benchmarks comparing dynclip with torch and JAX (not installed with the package).

Run ``python -m benchmarks.run --help`` from the repository root.
"""
