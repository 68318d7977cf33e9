"""authbridge benchmarks: ``bench/run`` or ``.venv/bin/python -m bench`` (see bench/README.md).

Not part of the test suite: targets live here, as printed figures and ratios,
never in timed unit tests (STYLE.md).
"""
