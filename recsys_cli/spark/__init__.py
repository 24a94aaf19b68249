"""engine=spark: ingest, split and features on a Spark cluster (or `local[N]`).

Spark does what it is good at, reading many files and shuffling rows so that
everything one unit of work needs sits together (a day's events for
deduplication, a bucket of users for their sequences and targets, a bucket of
items for their aggregates). The work on each unit is the polars engine's own
code, called from Spark's Python workers through Arrow (`mapInArrow`,
`groupBy(...).applyInArrow`): every validation rule, pseudonym and feature is
defined once, and a parity test holds both engines to the same output.
"""
