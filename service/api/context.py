"""The API's process state: one :class:`ServiceContext`, built once at startup.

It holds the database engine, the chain connection, the deployment's contracts, the
EIP-712 domain of the evidence log, the registry view that answers "who is this
address" (:class:`~service.api.directory.LiveDirectory`), the settings and the
rate limiter (shared through the database on PostgreSQL, see :mod:`service.api.limits`).
Routes reach it through ``CtxDep`` (:mod:`service.api.deps`).

``build_context`` reads :class:`~service.settings.Settings`: the network
(``TALLY_NETWORK``: a name in ``chain-config/`` or a ``.toml`` path), the deployment file
(``TALLY_DEPLOYMENT_FILE``, default ``chain-config/deployments/<network>.json``) and the
database, and refuses a placeholder ``TALLY_JWT_SECRET`` on every network but the
embedded one (:meth:`~service.settings.Settings.check_token_secret`). The embedded
network has no deployment to attach to: it lives inside this process, so a fresh
contract set is deployed at start with the dev accounts, and a WARNING line
(:data:`EMBEDDED_WARNING`) says that its state is lost on restart (for local
development only; use a fresh database with it).
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import Engine

from service.api.directory import LiveDirectory
from service.api.ingest import IngestGate
from service.api.limits import Limiter, make_limiter
from service.chain.client import Chain
from service.chain.config import deployment_path, load_deployment, load_network
from service.chain.deploy import TallyContracts, attach, deploy_tally
from service.chain.homespace import HomeSpaces
from service.chain.keys import (
    NoteKeyMissing,
    dev_account,
    dev_note_seed,
    note_signer,
    operator_account,
)
from service.db import create_schema, make_engine
from service.errors import ConfigError
from service.evidence.binding import bind_log
from service.evidence.eip712 import Domain
from service.settings import Settings
from service.witness.cosignatures import parse_witnesses, space_origin
from service.witness.note import CosignatureV1Verifier, NoteSigner

log = logging.getLogger(__name__)

REQUEST_THREADS = 16
"""Threads that run the synchronous routes of one worker (anyio's default is 40), and the
database connections kept open for them: on 2 cores more threads only contend for the
GIL and the log lock, and each one needs a pooled connection or it reconnects per request."""

EMBEDDED_WARNING = (
    "embedded network: deploying a fresh contract set in this process; its chain state "
    "(participants, checkpoints, rounds, deposits) is lost on restart, and the log "
    "database then refers to contracts that no longer exist. Development only: use "
    "anvil (tally chain up, TALLY_NETWORK=anvil) or another RPC network to keep it."
)


@dataclass
class ServiceContext:
    """Everything a request handler needs, shared by the requests of one process."""

    settings: Settings
    engine: Engine
    chain: Chain
    contracts: TallyContracts
    domain: Domain
    directory: LiveDirectory
    limiter: Limiter
    operator: LocalAccount | None = None
    owns_engine: bool = False
    # Foreign spaces whose providers cross-space agreements may name (T10; network config).
    home_spaces: HomeSpaces | None = None
    # The log's note key (named after the origin) and the witnesses whose cosignatures
    # the space accepts (T10: GET /v1/log/checkpoint, POST /v1/log/cosignatures).
    note_signer: NoteSigner | None = None
    witnesses: tuple[CosignatureV1Verifier, ...] = ()
    # Evidence batches appended at once by this process (TALLY_INGEST_CONCURRENCY).
    ingest_gate: IngestGate = field(default_factory=IngestGate)
    # The embedded chain (eth-tester) is not thread-safe: its calls are serialized.
    _chain_lock: threading.RLock = field(default_factory=threading.RLock)

    def chain_guard(self) -> AbstractContextManager[object]:
        """Hold this around chain calls (a lock on the embedded chain, nothing on RPC)."""
        return self._chain_lock if self.chain.is_embedded else nullcontext()

    def close(self) -> None:
        if self.owns_engine:
            self.engine.dispose()


def make_context(
    *,
    settings: Settings,
    engine: Engine,
    chain: Chain,
    contracts: TallyContracts,
    operator: LocalAccount | None = None,
    owns_engine: bool = False,
    home_spaces: HomeSpaces | None = None,
    note_signer: NoteSigner | None = None,
    dev_note_key: bool = True,
) -> ServiceContext:
    """A context over already-open parts (tests and tools build theirs this way).

    Without ``note_signer``, the dev operator (dev account 0) gets the dev chains' derived
    note key (:func:`~service.chain.keys.dev_note_seed`) unless ``dev_note_key`` is False
    (``build_context``: the network's key source decides); any other operator none.
    """
    domain = Domain(chain_id=chain.chain_id, verifying_contract=contracts.ledger.address)
    dev_operator = operator is not None and operator.address == dev_account(0).address
    if note_signer is None and dev_note_key and dev_operator:
        origin = note_origin(settings, chain.chain_id, contracts.ledger.address)
        note_signer = NoteSigner(origin, dev_note_seed(origin))
    lock = threading.RLock()
    directory = LiveDirectory(
        chain,
        contracts.registry,
        ttl_s=settings.role_cache_s,
        guard=lock if chain.is_embedded else None,
    )
    return ServiceContext(
        settings=settings,
        engine=engine,
        chain=chain,
        contracts=contracts,
        domain=domain,
        directory=directory,
        limiter=make_limiter(
            engine=engine, rate_per_s=settings.rate_limit_per_s, burst=settings.rate_limit_burst
        ),
        operator=operator,
        owns_engine=owns_engine,
        home_spaces=home_spaces,
        note_signer=note_signer,
        witnesses=parse_witnesses(settings.witnesses),
        ingest_gate=IngestGate(settings.ingest_concurrency),
        _chain_lock=lock,
    )


def note_origin(settings: Settings, chain_id: int, ledger: str) -> str:
    """The log's checkpoint origin (:func:`~service.witness.cosignatures.space_origin`)."""
    return space_origin(
        space=settings.space_name or settings.siwe_domain, chain_id=chain_id, ledger=ledger
    )


def build_context(settings: Settings) -> ServiceContext:
    """Connect to the database and the chain the settings name (see the module docstring)."""
    network = load_network(settings.network)
    settings.check_token_secret(network=network.name, embedded=network.kind == "embedded")
    chain = Chain.connect(network)
    operator: LocalAccount | None
    try:
        operator = operator_account(network)
    except ConfigError:
        operator = None  # reads and ingest work without the key; anchoring and rounds do not
    if network.kind == "embedded":
        if operator is None:  # pragma: no cover - the embedded network always has dev keys
            raise ConfigError("the embedded network needs its dev operator key")
        log.warning(EMBEDDED_WARNING)
        contracts = deploy_tally(chain, admin=operator)
    else:
        path = settings.deployment_file or deployment_path(network.name)
        contracts = attach(chain, load_deployment(path))
    engine = make_engine(settings.database_url, pool_size=REQUEST_THREADS)
    create_schema(engine)
    bind_log(engine=engine, chain_id=chain.chain_id, ledger=contracts.ledger.address)
    origin = note_origin(settings, chain.chain_id, contracts.ledger.address)
    signer: NoteSigner | None
    try:
        signer = note_signer(network, origin)
    except NoteKeyMissing as err:
        signer = None  # GET /v1/log/checkpoint answers 503 note_key_unavailable
        log.warning("no note key: checkpoints are not served as signed notes (%s)", err)
    return make_context(
        settings=settings,
        engine=engine,
        chain=chain,
        contracts=contracts,
        operator=operator,
        owns_engine=True,
        home_spaces=HomeSpaces.from_network(network),
        note_signer=signer,
        dev_note_key=False,
    )
