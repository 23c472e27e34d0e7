"""``python -m service.indexer``: the ``tally index`` command group on its own."""

from service.indexer.cli import main

main()
