"""The chain indexer: mirrors a deployment's contract events into SQL.

Parts (see ``../shared/style.md``, Indexer): :mod:`~service.indexer.scanner` fetches and
decodes block ranges (:mod:`~service.indexer.source`, :mod:`~service.indexer.decode`),
:mod:`~service.indexer.store` holds the cursor and writes each range with it in one
transaction, :mod:`~service.indexer.handlers` folds events into the derived tables
(:mod:`~service.indexer.models`), and :mod:`~service.indexer.runner` drives the loop,
including reorg detection and rollback.
"""
