"""The HTTP API (FastAPI), versioned under ``/v1``; OpenAPI at ``/openapi.json``, ``/docs``.

Layout (routes are thin: parse, call a function of the modules below, return):

- :mod:`~service.api.main`: ``create_app``; wires routers, error handlers, limits, metrics.
- :mod:`~service.api.context`: the process's :class:`ServiceContext` (engine, chain,
  contracts, EIP-712 domain, registry view, rate limiter), built once at startup.
- :mod:`~service.api.deps`: typed dependencies (``SessionDep``, ``PrincipalDep``, ...).
- :mod:`~service.api.errors`: one error shape, ``{"error": {"code", "message"}}``.
- :mod:`~service.api.auth` and :mod:`~service.api.siwe`: Sign-In with Ethereum
  (EIP-4361), bearer tokens (JWT), roles, operator API keys.
- :mod:`~service.api.limits`: body size limit, per-caller rate limit.
- :mod:`~service.api.ingest`, :mod:`~service.api.queries`, :mod:`~service.api.rounds`,
  :mod:`~service.api.health`: the service functions behind the routes (no FastAPI).
- :mod:`~service.api.metrics`: Prometheus metrics; :mod:`~service.api.background`: the
  anchoring and indexing loops of ``tally serve``; :mod:`~service.api.process`: run
  ``tally serve`` as a child process (the API benchmark is
  :mod:`service.bench.api`).
"""
