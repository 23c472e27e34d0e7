"""``tally bench``: Tally's figures next to their baselines, measured in one run.

:mod:`service.bench.runner` assembles the sections (merkle, settlement, indexer, ingest,
anchor, claim, api); the section modules here measure what no other layer owns:
:mod:`~service.bench.ingest` (signed receipts into the SQL log vs bare key recovery),
:mod:`~service.bench.anchor` (checkpoint gas vs one transaction per receipt),
:mod:`~service.bench.claims` (vault claims vs a minimal distributor; also used by
``scripts/gas_table.py``) and :mod:`~service.bench.merkle` (the SQL tree vs plain loops
and pymerkle). Speed figures are ratios measured side by side on the same machine.
"""
