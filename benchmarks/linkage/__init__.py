"""Measured quality of batch linkage (issue 5): a register with history and an agency roll with
realistic errors and ground truth; mynumber's :func:`mynumber.agency.bulk.link_records` beside
the insurers' 2023 rule, an exact kanji-name rule and plain Splink, in the same run.

Run with ``python -m benchmarks --only linkage`` (or ``python -m benchmarks.linkage``); see
benchmarks/README.md, section 7.
"""
