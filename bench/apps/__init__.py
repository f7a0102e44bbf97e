"""Small apps the benchmarks run as separate server processes (``python -m bench.apps.NAME``)."""
