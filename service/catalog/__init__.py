"""The data catalog and usage terms (T11): offers from the log, searchable, DCAT export.

- :mod:`service.catalog.canonical`: RFC 8785 canonical JSON of pricing and terms.
- :mod:`service.catalog.terms`: the ODRL 2.2 usage-terms profile and its evaluator (pure).
- :mod:`service.catalog.models` / :mod:`service.catalog.index`: the SQL index of offers
  (latest versions, FTS5 on SQLite, tsvector on PostgreSQL), rebuilt from the log.
- :mod:`service.catalog.gate`: the ingest hook that enforces terms in the log's append
  transaction (quota counters, validity, purpose).
- :mod:`service.catalog.dcat`: the W3C DCAT 3 JSON-LD export.
"""
