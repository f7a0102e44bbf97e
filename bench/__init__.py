"""Benchmarks of coatcheck against peer libraries, measured in one run: ``python -m bench``.

Numbers from different runs (or machines) are not comparable; ratios from one run are.
See bench/README.md.
"""
