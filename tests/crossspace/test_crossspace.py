"""Cross-space usage on two real chains (two anvil nodes, see conftest.py): a consumer of
space B uses the data of a provider registered only in space A.

B's ingest checks the provider's standing in A's registry on A's chain (cached), rejects
with stable codes when A says no or cannot be read, B settles, A's provider claims from
B's vault with its own key, and the auditor recomputes the round with both chains.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

from service.api.context import make_context
from service.api.main import create_app
from service.audit.homespace import HomeRegistries, PinnedHome
from service.chain.config import load_network, parse_network, save_deployment
from service.chain.homespace import HomeSpace, HomeSpaces
from service.cli import app
from service.db import create_schema, make_engine
from service.errors import ConfigError, HomeSpaceUnknown
from service.evidence.anchor import OnChainCheckpoint, anchor_once
from service.evidence.directory import ChainDirectory
from service.evidence.entries import AgreementV2, SignedEntry, UsageReceipt, sign_entry
from service.evidence.log import ItemResult, append_entries
from service.evidence.models import LogEntry
from service.settlement.engine import compute_round
from service.settlement.rounds import deposit, finalize, propose
from tests.api.conftest import TestClient, api_settings, bearer, get_token
from tests.crossspace.conftest import HOME_CHAIN_ID, HomeSpaceA, start_home_space
from tests.settlement.test_engine import P0, P1, T0, VALID_UNTIL, make_policy
from tests.settlement.test_engine import agreement as local_agreement
from tests.settlement.test_engine import receipt as local_receipt
from tests.space import Space

PRICE = 1000
LOCAL_AG = b"\xb1" * 32  # an agreement among B's own participants
WINDOW = 3_600  # tests/space.py's challenge window


# --- helpers ------------------------------------------------------------------------------


def write_networks(tmp: Path, a: HomeSpaceA, b: Space, *, cache_s: float) -> Path:
    """Chain-config files: A's network, and B's naming A as a home space."""
    (tmp / "space-a.toml").write_text(
        f'name = "space-a"\nkind = "rpc"\nrpc_url = "{a.node.url}"\nchain_id = {HOME_CHAIN_ID}\n'
        '[keys]\nsource = "env"\n'
    )
    path = tmp / "space-b.toml"
    path.write_text(
        f'name = "space-b"\nkind = "rpc"\ndev = true\nrpc_url = "{b.chain.network.rpc_url}"\n'
        'chain_id = 31337\n[keys]\nsource = "dev-mnemonic"\n\n'
        f'[[home_spaces]]\nnetwork = "{tmp / "space-a.toml"}"\nregistry = "{a.registry}"\n'
        f"cache_s = {cache_s}\n"
    )
    return path


def homes_of(tmp: Path, a: HomeSpaceA, b: Space, *, cache_s: float = 0.0) -> HomeSpaces:
    return HomeSpaces.from_network(load_network(write_networks(tmp, a, b, cache_s=cache_s)))


def cross_agreement(
    b: Space,
    aid: bytes,
    providers: list[LocalAccount],
    *,
    home_chain_id: int = HOME_CHAIN_ID,
    home_registry: str,
    consumer: LocalAccount | None = None,
) -> SignedEntry:
    """An AgreementV2 in ``b`` whose providers are at home in another space, signed by all.

    ``consumer`` defaults to ``b``'s first consumer.
    """
    ps = sorted(providers, key=lambda p: p.address.lower())
    consumer = consumer or b.consumers[0]
    entry = AgreementV2(
        agreementId=aid,
        assetId=b"\xa5" * 32,
        consumer=consumer.address,
        providers=tuple(p.address for p in ps),
        unitPrice=PRICE,
        policyHash=make_policy(b).hash,
        validFrom=T0,
        validUntil=VALID_UNTIL,
        offerId=b"\x00" * 32,
        offerVersion=0,
        termsHash=b"\x00" * 32,
        homeChainId=home_chain_id,
        homeRegistry=home_registry,
    )
    return sign_entry(entry, b.domain, [bytes(consumer.key), *(bytes(p.key) for p in ps)])


def cross_receipt(
    b: Space, aid: bytes, provider: LocalAccount, nonce: int, units: int = 10
) -> SignedEntry:
    consumer = b.consumers[0]
    entry = UsageReceipt(
        agreementId=aid,
        consumer=consumer.address,
        provider=provider.address,
        units=units,
        periodStart=P0 + 60 * nonce,
        periodEnd=P0 + 60 * nonce + 60,
        detailHash=nonce.to_bytes(32, "big"),
        nonce=nonce,
    )
    return sign_entry(entry, b.domain, [bytes(consumer.key), bytes(provider.key)])


def ingest(
    engine: Engine, b: Space, entries: list[SignedEntry], homes: HomeSpaces | None
) -> list[ItemResult]:
    return append_entries(
        engine=engine,
        domain=b.domain,
        directory=ChainDirectory(b.chain, b.contracts.registry),
        entries=entries,
        home_spaces=homes,
    )


def statuses(results: list[ItemResult]) -> list[tuple[str, str | None]]:
    return [(r.status, r.code) for r in results]


def log_size(engine: Engine) -> int:
    with Session(engine) as s:
        return len(list(s.exec(select(LogEntry.leaf_index))))


def fresh_engine(tmp: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp}/b.db")
    create_schema(engine)
    return engine


class Clock:
    """A clock the test moves (the standing cache's time), so staleness is exact."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def tally(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


# --- config --------------------------------------------------------------------------------


def test_home_space_config_names_another_network(
    tmp_path: Path, space_a: HomeSpaceA, space_b: Space
) -> None:
    homes = homes_of(tmp_path, space_a, space_b, cache_s=7.5)
    (home,) = list(homes)
    assert (home.chain_id, home.registry, home.cache_s) == (HOME_CHAIN_ID, space_a.registry, 7.5)
    assert home.network.rpc_url == space_a.node.url
    assert homes.get(HOME_CHAIN_ID, space_a.registry.lower()) is home
    with pytest.raises(HomeSpaceUnknown):
        homes.get(HOME_CHAIN_ID + 1, space_a.registry)
    with pytest.raises(HomeSpaceUnknown):
        homes.get(HOME_CHAIN_ID, "0x" + "11" * 20)


def test_home_space_on_an_embedded_network_is_refused() -> None:
    embedded = load_network("embedded")
    with pytest.raises(ConfigError, match="must be an RPC network"):
        HomeSpace(network=embedded, registry="0x" + "11" * 20, cache_s=1)


def test_home_space_config_rejects_a_bad_registry() -> None:
    doc = {
        "name": "b",
        "kind": "embedded",
        "chain_id": 5,
        "keys": {"source": "dev-mnemonic"},
        "home_spaces": [{"network": "anvil", "registry": "0x12"}],
    }
    with pytest.raises(ConfigError, match=r"home_spaces\.0\.registry"):
        parse_network(doc, source="b.toml")


# --- ingest ---------------------------------------------------------------------------------


def test_cross_space_receipt_is_accepted_only_while_the_provider_is_active_at_home(
    engine: Engine, space_a: HomeSpaceA, space_b: Space
) -> None:
    a, b = space_a, space_b
    provider = a.providers[1]
    clock = Clock()
    network = load_network("anvil").model_copy(update={"rpc_url": a.node.url, "chain_id": 31338})
    home = HomeSpace(network=network, registry=a.registry, cache_s=10, clock=clock)
    homes = HomeSpaces([home])
    aid = b"\xc1" * 32
    agreement = cross_agreement(b, aid, [provider], home_registry=a.registry)
    # the provider is registered in A only: B's own registry does not know it
    assert ChainDirectory(b.chain, b.contracts.registry).party(provider.address).registered is False
    first = ingest(engine, b, [agreement, cross_receipt(b, aid, provider, 1)], homes)
    assert statuses(first) == [("accepted", None), ("accepted", None)]

    a.suspend(provider)
    try:
        clock.now += 5  # within the cache time: B still holds A's earlier answer
        stale = ingest(engine, b, [cross_receipt(b, aid, provider, 2)], homes)
        assert statuses(stale) == [("accepted", None)]
        clock.now += 6  # past it: B reads A again and sees the suspension
        before = log_size(engine)
        refused = ingest(engine, b, [cross_receipt(b, aid, provider, 3)], homes)
        assert statuses(refused) == [("rejected", "provider_not_active_in_home_space")]
        assert "suspended" in (refused[0].message or "")
        assert log_size(engine) == before  # nothing stored
    finally:
        a.reinstate(provider)
    clock.now += 11
    again = ingest(engine, b, [cross_receipt(b, aid, provider, 3)], homes)
    assert statuses(again) == [("accepted", None)]


def test_agreement_with_a_provider_not_registered_at_home_is_rejected(
    tmp_path: Path, space_a: HomeSpaceA, space_b: Space
) -> None:
    a, b = space_a, space_b
    engine = fresh_engine(tmp_path)
    homes = homes_of(tmp_path, a, b)
    stranger = b.chain.accounts[15]  # registered nowhere
    mixed = cross_agreement(b, b"\xc2" * 32, [a.providers[0], stranger], home_registry=a.registry)
    results = ingest(engine, b, [mixed], homes)
    assert statuses(results) == [("rejected", "provider_not_active_in_home_space")]
    assert stranger.address in (results[0].message or "")
    assert log_size(engine) == 0


def test_agreement_naming_an_unconfigured_home_space_is_rejected(
    tmp_path: Path, space_a: HomeSpaceA, space_b: Space
) -> None:
    a, b = space_a, space_b
    engine = fresh_engine(tmp_path)
    homes = homes_of(tmp_path, a, b)
    other_chain = cross_agreement(
        b, b"\xc3" * 32, [a.providers[0]], home_chain_id=999, home_registry=a.registry
    )
    other_registry = cross_agreement(
        b, b"\xc4" * 32, [a.providers[0]], home_registry="0x" + "22" * 20
    )
    results = ingest(engine, b, [other_chain, other_registry], homes)
    assert statuses(results) == [("rejected", "home_space_unknown")] * 2
    # a space that accepts no home spaces at all refuses them the same way
    assert statuses(ingest(engine, b, [other_chain], None)) == [("rejected", "home_space_unknown")]
    assert log_size(engine) == 0


def test_consumer_of_a_cross_space_agreement_is_still_checked_in_b(
    tmp_path: Path, space_a: HomeSpaceA, space_b: Space
) -> None:
    a, b = space_a, space_b
    engine = fresh_engine(tmp_path)
    homes = homes_of(tmp_path, a, b)
    outsider = b.outsider  # not registered in B
    signed = cross_agreement(
        b, b"\xc5" * 32, [a.providers[0]], home_registry=a.registry, consumer=outsider
    )
    assert statuses(ingest(engine, b, [signed], homes)) == [("rejected", "unknown_participant")]


def test_home_chain_down_rejects_with_a_retryable_code_and_a_retry_after_restart_succeeds(
    tmp_path: Path, space_b: Space
) -> None:
    b = space_b
    a = start_home_space(tmp_path / "a-state.json")
    try:
        provider = a.providers[2]
        homes = homes_of(tmp_path, a, b, cache_s=0)
        engine = fresh_engine(tmp_path)
        ctx = make_context(
            settings=api_settings(data_dir=tmp_path),
            engine=engine,
            chain=b.chain,
            contracts=b.contracts,
            operator=b.operator,
            home_spaces=homes,
        )
        aid = b"\xc6" * 32
        with TestClient(create_app(context=ctx)) as client:
            headers = bearer(get_token(client, b.consumers[0]))

            def submit(*entries: SignedEntry) -> dict[str, object]:
                body = {"entries": [e.to_json() for e in entries]}
                r = client.post("/v1/evidence", json=body, headers=headers)
                assert r.status_code == 200, r.text
                out: dict[str, object] = r.json()
                return out

            up = submit(cross_agreement(b, aid, [provider], home_registry=a.registry))
            assert up["accepted"] == 1, up
            a.node.stop()  # A's chain goes away (its state is saved)
            receipt = cross_receipt(b, aid, provider, 1)
            local = [local_agreement(b, LOCAL_AG, providers=(0,))]
            local.append(local_receipt(b, 1, provider=0, units=5, aid=LOCAL_AG))
            down = submit(local[0], receipt, local[1])
            results: list[dict[str, object]] = down["results"]  # type: ignore[assignment]
            # per item: B's own evidence goes in, the cross-space receipt waits for A
            assert [(r["status"], r["code"]) for r in results] == [
                ("accepted", None),
                ("rejected", "home_space_unreachable"),
                ("accepted", None),
            ], down
            assert a.node.url not in str(results[1]["message"])  # a node URL may carry a key
            assert log_size(engine) == 3  # the agreement and B's two: nothing of the receipt
            a.node.start()  # same port, same state
            retried = submit(receipt)
            (item,) = retried["results"]  # type: ignore[misc]
            assert (item["status"], item["leaf_index"]) == ("accepted", 3), retried
        assert log_size(engine) == 4
    finally:
        a.node.stop()


# --- settle, claim, audit ---------------------------------------------------------------------


def test_b_settles_a_provider_claims_with_its_own_key_and_the_audit_needs_both_chains(
    tmp_path: Path, space_a: HomeSpaceA, space_b: Space
) -> None:
    a, b = space_a, space_b
    provider = a.providers[0]
    engine = fresh_engine(tmp_path)
    b_network = write_networks(tmp_path, a, b, cache_s=0)
    homes = HomeSpaces.from_network(load_network(b_network))
    aid = b"\xc7" * 32
    entries = [
        cross_agreement(b, aid, [provider], home_registry=a.registry),
        cross_receipt(b, aid, provider, 1, units=30),
        cross_receipt(b, aid, provider, 2, units=10),
    ]
    assert [r.status for r in ingest(engine, b, entries, homes)] == ["accepted"] * 3
    cp = anchor_once(engine=engine, chain=b.chain, ledger=b.contracts.ledger, operator=b.operator)
    assert cp is not None
    policy = make_policy(b)
    result = compute_round(
        session_or_engine=engine,
        round_id=1,
        period_start=P0,
        period_end=P1,
        checkpoint_size=cp.tree_size,
        checkpoint_seq=cp.seq,
        policy=policy,
    )
    # 40 units x 1000 = 40000; the operator's 2.5 % fee; the rest to A's provider
    assert result.payouts == {provider.address.lower(): 39000, b.operator.address.lower(): 1000}
    consumer, token, vault = b.consumers[0], b.contracts.token, b.contracts.vault
    b.chain.transact(token.functions.mint(consumer.address, result.pool), sender=b.operator)
    deposit(chain=b.chain, vault=vault, token=token, sender=consumer, amount=result.pool)
    proposed = propose(
        chain=b.chain, vault=vault, result=result, sender=b.operator, data_dir=tmp_path
    )
    b.chain.increase_time(WINDOW + 1)
    finalize(chain=b.chain, vault=vault, round_id=1, sender=b.operator)
    assert proposed.files is not None

    deployment = tmp_path / "b-deployment.json"
    save_deployment(b.contracts.deployment, deployment)
    b_opts = ("--rpc", str(b.chain.network.rpc_url), "--deployment", str(deployment))
    # A's provider claims on B with its own key: it is not a participant of B
    assert ChainDirectory(b.chain, b.contracts.registry).party(provider.address).registered is False
    key = {"PROVIDER_KEY": "0x" + bytes(provider.key).hex()}
    claimed = tally(
        "claim", "--round", "1", "--account", provider.address,
        "--payouts", str(proposed.files.payouts), "--key-env", "PROVIDER_KEY", *b_opts, env=key,
    )  # fmt: skip
    assert claimed.exit_code == 0, (claimed.output, claimed.exception)
    assert f"{provider.address} 39000: claimed" in claimed.stdout
    assert int(b.chain.call(token.functions.balanceOf(provider.address))) == 39000

    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(
        f'version = 1\noperator = "{b.operator.address}"\noperator_fee_bps = 250\n'
        'method = "output"\ndefault_quality_bps = 6000\n'
    )
    audit = ("audit", "settlement", "1", "--policy", str(policy_file), *b_opts)
    db = ("--db", f"sqlite:///{tmp_path}/b.db", "--json")
    home = ("--home-rpc", a.node.url, "--home-registry", a.registry)

    def report(*args: str) -> tuple[int, dict[str, dict[str, object]]]:
        out = tally(*audit, *db, *args)
        assert out.exit_code in (0, 1), (out.output, out.exception)
        doc = json.loads(out.stdout)
        return out.exit_code, {c["check"]: c for c in doc["checks"]}

    code, checks = report(*home)
    assert code == 0, checks
    assert checks["roles"]["ok"] is True and checks["payouts"]["ok"] is True
    # by default the home spaces come from the audited network's [[home_spaces]]
    by_config = tally(
        "audit", "settlement", "1", "--policy", str(policy_file), "--network", str(b_network),
        "--deployment", str(deployment), *db,
    )  # fmt: skip
    assert by_config.exit_code == 0, (by_config.output, by_config.exception)

    # without A's chain the auditor cannot confirm A's provider: the roles check fails
    code, checks = report()
    assert code == 1 and checks["roles"]["ok"] is False
    assert "was not given to the audit" in str(checks["roles"]["detail"])

    # a home chain whose registry (same address: same deployer, same nonces) never had
    # the provider: the audit of the same round fails at the roles check, naming it
    other = start_home_space(register=False)
    try:
        assert other.registry == a.registry
        code, checks = report("--home-rpc", other.node.url, "--home-registry", other.registry)
        assert code == 1 and checks["roles"]["ok"] is False, checks["roles"]
        detail = str(checks["roles"]["detail"])
        assert provider.address in detail and "was not an active provider" in detail
        assert "unregistered" in detail
        assert checks["payouts"]["ok"] is None  # skipped: the evidence is not valid
    finally:
        other.node.stop()


def test_audit_reads_home_standing_when_the_entry_was_appended(tmp_path: Path) -> None:
    """The window rule of service/audit/homespace.py on a real home chain: an entry counts
    when its provider was active at home at the first checkpoint covering it or at the
    one before; suspended at both (a receipt let through by a stale cache) fails."""
    a = start_home_space()
    try:
        provider = a.providers[0]
        home = PinnedHome(a.chain, a.registry)
        homes = HomeRegistries([home])

        def later() -> int:
            a.chain.increase_time(100)  # mines a block 100 s on: distinct timestamps
            return int(a.chain.w3.eth.get_block("latest")["timestamp"])

        genesis = int(a.chain.w3.eth.get_block(0)["timestamp"])
        t_active = later()
        later()  # the suspension's block must not share t_active's second
        a.suspend(provider)
        t_suspended = later()
        t_still = later()
        cps = [
            OnChainCheckpoint(0, 1, b"\x00" * 32, 1, genesis - 1),  # before A existed
            OnChainCheckpoint(1, 2, b"\x00" * 32, 2, t_active),
            OnChainCheckpoint(2, 3, b"\x00" * 32, 3, t_suspended),
            OnChainCheckpoint(3, 4, b"\x00" * 32, 4, t_still),
        ]

        def problem(leaf: int) -> str | None:
            return homes.problem(
                chain_id=HOME_CHAIN_ID,
                registry=a.registry,
                address=provider.address,
                leaf_index=leaf,
                checkpoints=cps,
            )

        assert "unregistered at home block -1" in (problem(0) or "")
        assert problem(1) is None  # active when checkpoint 1 was anchored
        assert problem(2) is None  # appended between checkpoints 1 and 2: active at 1
        late = problem(3)  # appended between 2 and 3: suspended at both ends
        assert late is not None and late.count("suspended at home block") == 2, late
        assert home.block_at(t_active) < home.block_at(t_suspended)
        assert "was not given to the audit" in (
            homes.problem(
                chain_id=HOME_CHAIN_ID + 5,
                registry=a.registry,
                address=provider.address,
                leaf_index=1,
                checkpoints=cps,
            )
            or ""
        )
    finally:
        a.node.stop()
