"""``tally index``: the indexer's command group (implemented in :mod:`service.indexer.cli`,
which ``python -m service.indexer`` also runs without loading every other command)."""

from service.indexer.cli import index_app, main, rebuild, status

__all__ = ["index_app", "main", "rebuild", "status"]
