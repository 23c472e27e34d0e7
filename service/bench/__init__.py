"""``tally bench``: Tally's figures next to their baselines, measured in one run.

:mod:`service.bench.runner` assembles the sections (merkle, settlement, indexer, ingest,
anchor, claim, api, valuation); every harness lives here, so the domain packages keep
only what the product runs: :mod:`~service.bench.api` (``tally serve`` under load),
:mod:`~service.bench.indexer` (the indexer vs raw ``eth_getLogs``),
:mod:`~service.bench.settlement` (a round vs one SQL GROUP BY),
:mod:`~service.bench.ingest` (signed receipts into the SQL log vs bare key recovery),
:mod:`~service.bench.anchor` (checkpoint gas vs one transaction per receipt),
:mod:`~service.bench.claims` (vault claims vs a minimal distributor; also used by
``scripts/gas_table.py``) and :mod:`~service.bench.merkle` (the SQL tree vs plain loops
and pymerkle). Speed figures are ratios measured side by side on the same machine.
"""
