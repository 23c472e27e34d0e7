"""The web dashboard served by ``tally serve`` at ``/`` (see ``service/web/README.md``).

:func:`mount` adds the page routes (:mod:`service.web.pages`), the committed static
assets at ``/static`` and, over an embedded chain, the read-only JSON-RPC endpoint
(:mod:`service.web.rpc`) to the API app; the pages read through the app's own routes.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def mount(app: FastAPI) -> None:
    """The dashboard's routes and static assets on ``app`` (not in its OpenAPI)."""
    from service.web import pages, rpc

    app.include_router(pages.router)
    app.include_router(rpc.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
