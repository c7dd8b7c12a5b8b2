"""Benchmarks of mynumber: bulk import, five-item queries in process and over HTTP, JPKI,
the Merkle log, brokered network exchanges and the log in its database.

Run with ``python -m benchmarks --help``. Every figure is printed beside a baseline measured in
the same run (the best in-process way to do the same work), as a ratio; see README.md.
"""
