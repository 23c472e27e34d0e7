"""Entry models, required signers, SignedEntry verification, canonical bytes and ids.

Digests are checked against eth_account, message bytes against eth_abi, ids against
hashlib's SHA-256 of the documented layout.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak as eth_utils_keccak
from eth_utils import to_checksum_address as eu_checksum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import InvalidEntry, InvalidSignature, SignerMismatch
from service.evidence import entries as entries_module
from service.evidence.eip712 import Domain, sign_digest
from service.evidence.entries import (
    CoalitionValues,
    EntryBase,
    EntryType,
    SignedEntry,
    UsageReceipt,
    begin_verify,
    decode_entry,
    encode_entry,
    entry_id,
    parse_entry,
    required_signers,
    shutdown_verify_pools,
    sign_entry,
    verify_many,
)

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LEDGER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = Domain(chain_id=31337, verifying_contract=LEDGER)


def key(i: int) -> bytes:
    return hashlib.sha256(f"tally test key {i}".encode()).digest()


def addr(i: int) -> str:
    return str(Account.from_key(key(i)).address)


def by_address(addresses: list[str]) -> list[str]:
    return sorted(addresses, key=lambda a: bytes.fromhex(a[2:]))


CONSUMER, PROVIDER, PROVIDER2, AUDITOR, OPERATOR, EVALUATOR, STRANGER = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
)
PROVIDERS = by_address([addr(PROVIDER), addr(PROVIDER2)])

# The EIP-712 definitions of issue T3, written out independently of the models.
ISSUE_TYPE_STRINGS = {
    "Agreement": "Agreement(bytes32 agreementId,bytes32 assetId,address consumer,"
    "address[] providers,uint256 unitPrice,bytes32 policyHash,uint64 validFrom,"
    "uint64 validUntil)",
    "UsageReceipt": "UsageReceipt(bytes32 agreementId,address consumer,address provider,"
    "uint64 units,uint64 periodStart,uint64 periodEnd,bytes32 detailHash,uint64 nonce)",
    "QualityAttestation": "QualityAttestation(bytes32 agreementId,address provider,"
    "uint64 periodStart,uint64 periodEnd,uint16 scoreBps)",
    "ContributionDeclaration": "ContributionDeclaration(bytes32 agreementId,address provider,"
    "uint8 kind,uint256 value,uint64 periodStart,uint64 periodEnd)",
    "CoalitionValues": "CoalitionValues(bytes32 agreementId,uint64 periodStart,"
    "uint64 periodEnd,address[] providers,uint256[] values)",
}


def issue_fields(type_name: str) -> list[tuple[str, str]]:
    inner = ISSUE_TYPE_STRINGS[type_name].split("(", 1)[1].rstrip(")")
    pairs = [part.split(" ") for part in inner.split(",")]
    return [(name, sol) for sol, name in pairs]


# --- sample messages (JSON form, as a client would post them) ---------------------------


def sample_json() -> dict[str, dict[str, Any]]:
    return {
        "Agreement": {
            "agreementId": "0x" + "a1" * 32,
            "assetId": "0x" + "b2" * 32,
            "consumer": addr(CONSUMER),
            "providers": PROVIDERS,
            "unitPrice": "1500000000000000000",
            "policyHash": "0x" + "c3" * 32,
            "validFrom": 1_700_000_000,
            "validUntil": 1_800_000_000,
        },
        "UsageReceipt": {
            "agreementId": "0x" + "a1" * 32,
            "consumer": addr(CONSUMER),
            "provider": addr(PROVIDER),
            "units": 1234,
            "periodStart": 1_700_000_000,
            "periodEnd": 1_700_086_400,
            "detailHash": "0x" + "d4" * 32,
            "nonce": 42,
        },
        "QualityAttestation": {
            "agreementId": "0x" + "a1" * 32,
            "provider": addr(PROVIDER),
            "periodStart": 1_700_000_000,
            "periodEnd": 1_700_086_400,
            "scoreBps": 9250,
        },
        "ContributionDeclaration": {
            "agreementId": "0x" + "a1" * 32,
            "provider": addr(PROVIDER),
            "kind": 1,
            "value": "250000",
            "periodStart": 1_700_000_000,
            "periodEnd": 1_700_086_400,
        },
        "CoalitionValues": {
            "agreementId": "0x" + "a1" * 32,
            "periodStart": 1_700_000_000,
            "periodEnd": 1_700_086_400,
            "providers": PROVIDERS,
            "values": ["0", "6100", "7000", "8800"],
        },
    }


# signer key indices and required_signers() context per type
SIGNERS: dict[str, tuple[list[int], dict[str, str]]] = {
    "Agreement": ([CONSUMER, PROVIDER, PROVIDER2], {}),
    "UsageReceipt": ([CONSUMER, PROVIDER], {}),
    "QualityAttestation": ([AUDITOR], {"attester": addr(AUDITOR)}),
    "ContributionDeclaration": ([PROVIDER, OPERATOR], {"operator": addr(OPERATOR)}),
    "CoalitionValues": ([EVALUATOR], {"evaluator": addr(EVALUATOR)}),
}
TYPE_NAMES = sorted(SIGNERS)


def sample(type_name: str) -> EntryBase:
    return parse_entry(type_name, sample_json()[type_name])


def signed_sample(type_name: str) -> tuple[SignedEntry, dict[str, str]]:
    keys, context = SIGNERS[type_name]
    entry = sample(type_name)
    return sign_entry(entry, DOMAIN, [key(i) for i in keys]), context  # type: ignore[arg-type]


def eth_account_typed(type_name: str, message: dict[str, Any], domain: Domain) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            type_name: [{"name": n, "type": t} for n, t in issue_fields(type_name)],
        },
        "primaryType": type_name,
        "domain": {
            "name": "Tally",
            "version": "1",
            "chainId": domain.chain_id,
            "verifyingContract": domain.verifying_contract,
        },
        "message": message,
    }


# --- models -----------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_models_have_the_issue_fields_and_types(type_name: str) -> None:
    entry = sample(type_name)
    assert entry.eip712_type.type_string == ISSUE_TYPE_STRINGS[type_name]
    assert entry.eip712_type.type_hash == bytes(
        eth_utils_keccak(text=ISSUE_TYPE_STRINGS[type_name])
    )
    assert list(type(entry).model_fields) == [n for n, _ in issue_fields(type_name)]


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_json_message_round_trips_and_matches_eth_account(type_name: str) -> None:
    posted = sample_json()[type_name]
    entry = parse_entry(type_name, posted)
    assert entry.message() == posted
    assert parse_entry(type_name, entry.message()) == entry
    signable = encode_typed_data(full_message=eth_account_typed(type_name, posted, DOMAIN))
    assert entry.struct_hash() == signable.body
    assert DOMAIN.separator == signable.header
    # typed_data() is what a wallet gets; eth_account must hash it the same way
    ours = encode_typed_data(full_message=entry.typed_data(DOMAIN))
    assert ours == signable


def test_models_are_immutable_and_hashable() -> None:
    receipt = sample("UsageReceipt")
    with pytest.raises(ValueError):
        receipt.units = 5  # type: ignore[misc]
    assert hash(receipt) == hash(sample("UsageReceipt"))


def test_addresses_are_checksummed_at_the_boundary() -> None:
    data = sample_json()["UsageReceipt"] | {"consumer": addr(CONSUMER).lower()}
    assert parse_entry("UsageReceipt", data).consumer == addr(CONSUMER)


def test_python_values_are_accepted_too() -> None:
    receipt = UsageReceipt(
        agreementId=b"\xa1" * 32,
        consumer=addr(CONSUMER),
        provider=addr(PROVIDER),
        units=1234,
        periodStart=1_700_000_000,
        periodEnd=1_700_086_400,
        detailHash=b"\xd4" * 32,
        nonce=42,
    )
    assert receipt == sample("UsageReceipt")


# --- bad input ----------------------------------------------------------------------------

BAD_INPUTS: list[tuple[str, str, object, str]] = [
    # (type, field, bad value, expected words in the message)
    ("UsageReceipt", "consumer", "0x1234", "40 hex digits"),
    ("UsageReceipt", "consumer", "0x" + "zz" * 20, "40 hex digits"),
    ("UsageReceipt", "consumer", "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "EIP-55"),
    ("UsageReceipt", "consumer", "0x" + "00" * 20, "zero address"),
    ("UsageReceipt", "consumer", 12345, "hex string"),
    ("UsageReceipt", "detailHash", "0x" + "ab" * 31, "64 hex digits"),
    ("UsageReceipt", "detailHash", "0x" + "ab" * 33, "64 hex digits"),
    ("UsageReceipt", "detailHash", "ab" * 32, "64 hex digits"),
    ("UsageReceipt", "detailHash", "0x" + "zz" * 32, "64 hex digits"),
    ("UsageReceipt", "units", -1, "uint64"),
    ("UsageReceipt", "units", 1 << 64, "uint64"),
    ("UsageReceipt", "units", "18446744073709551616", "uint64"),
    ("UsageReceipt", "units", 1.5, "integer"),
    ("UsageReceipt", "units", True, "integer"),
    ("UsageReceipt", "units", "-3", "decimal digits"),
    ("UsageReceipt", "units", "0x10", "decimal digits"),
    ("UsageReceipt", "nonce", None, "integer"),
    ("UsageReceipt", "periodEnd", 1_700_000_000, "periodStart"),
    ("UsageReceipt", "provider", None, "address"),
    ("QualityAttestation", "scoreBps", 10_001, "at most 10000"),
    ("QualityAttestation", "scoreBps", 1 << 16, "uint16"),
    ("ContributionDeclaration", "kind", 0, "kind must be one of"),
    ("ContributionDeclaration", "kind", 3, "kind must be one of"),
    ("ContributionDeclaration", "kind", 256, "uint8"),
    ("ContributionDeclaration", "value", 1 << 256, "uint256"),
    ("Agreement", "providers", [], "providers"),
    ("Agreement", "providers", list(reversed(PROVIDERS)), "ascending"),
    ("Agreement", "providers", [PROVIDERS[0], PROVIDERS[0]], "distinct"),
    ("Agreement", "providers", by_address([addr(CONSUMER), addr(PROVIDER)]), "consumer"),
    ("Agreement", "providers", "0x" + "11" * 20, "tuple"),
    ("Agreement", "validUntil", 1_600_000_000, "validFrom"),
    ("CoalitionValues", "values", ["1", "2", "3"], "2**2 = 4 items"),
    ("CoalitionValues", "values", ["1", "2", "3", "4", "5"], "2**2 = 4 items"),
    ("CoalitionValues", "values", ["1", "2", "3", -4], "uint256"),
    ("CoalitionValues", "providers", [], "providers"),
]


@pytest.mark.parametrize(("type_name", "field", "bad", "words"), BAD_INPUTS)
def test_bad_field_gives_clear_error(type_name: str, field: str, bad: object, words: str) -> None:
    data = sample_json()[type_name] | {field: bad}
    with pytest.raises(InvalidEntry) as info:
        parse_entry(type_name, data)
    err = info.value
    assert err.code == "invalid_entry"
    assert words in err.message
    assert type_name in err.message
    fields = {item["field"] for item in err.detail["errors"]}
    # an error on one field names that field; cross-field rules are on the entry
    assert fields <= {field, "(entry)"} or any(f.startswith(field + ".") for f in fields)


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_missing_field_is_named(type_name: str) -> None:
    data = sample_json()[type_name]
    field = next(iter(data))
    del data[field]
    with pytest.raises(InvalidEntry, match=f"{field}: Field required"):
        parse_entry(type_name, data)


def test_unknown_field_unknown_type_and_non_object_rejected() -> None:
    data = sample_json()["UsageReceipt"] | {"price": 5}
    with pytest.raises(InvalidEntry, match="price: Extra inputs are not permitted"):
        parse_entry("UsageReceipt", data)
    with pytest.raises(InvalidEntry, match="unknown entry_type 'Receipt'"):
        parse_entry("Receipt", sample_json()["UsageReceipt"])
    with pytest.raises(InvalidEntry, match="JSON object"):
        parse_entry("UsageReceipt", [1, 2])


def test_receipt_parties_must_differ() -> None:
    data = sample_json()["UsageReceipt"] | {"provider": addr(CONSUMER)}
    with pytest.raises(InvalidEntry, match="different parties"):
        parse_entry("UsageReceipt", data)


def test_several_errors_are_reported_together() -> None:
    data = sample_json()["UsageReceipt"] | {"units": -1, "nonce": "x"}
    del data["consumer"]
    with pytest.raises(InvalidEntry) as info:
        parse_entry("UsageReceipt", data)
    assert {e["field"] for e in info.value.detail["errors"]} == {"units", "nonce", "consumer"}


# --- signers and verification ---------------------------------------------------------------


def test_required_signers_per_type() -> None:
    assert required_signers(sample("Agreement")) == {addr(CONSUMER), *PROVIDERS}
    assert required_signers(sample("UsageReceipt")) == {addr(CONSUMER), addr(PROVIDER)}
    qa = sample("QualityAttestation")
    assert required_signers(qa, attester=addr(AUDITOR).lower()) == {addr(AUDITOR)}
    cd = sample("ContributionDeclaration")
    assert required_signers(cd) == {addr(PROVIDER)}
    assert required_signers(cd, operator=addr(OPERATOR)) == {addr(PROVIDER), addr(OPERATOR)}
    cv = sample("CoalitionValues")
    assert required_signers(cv, evaluator=addr(EVALUATOR)) == {addr(EVALUATOR)}
    with pytest.raises(ValueError, match="attester"):
        required_signers(qa)
    with pytest.raises(ValueError, match="evaluator"):
        required_signers(cv)


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_signed_entry_verifies_and_eth_account_agrees(type_name: str) -> None:
    signed, context = signed_sample(type_name)
    keys, _ = SIGNERS[type_name]
    expected = {addr(i) for i in keys}
    assert signed.verify(DOMAIN, **context) == expected
    typed = encode_typed_data(
        full_message=eth_account_typed(type_name, sample_json()[type_name], DOMAIN)
    )
    for signer, sig in signed.signatures.items():
        assert Account.recover_message(typed, signature=sig) == signer


def test_eth_account_signatures_verify_with_ours() -> None:
    typed = eth_account_typed("UsageReceipt", sample_json()["UsageReceipt"], DOMAIN)
    sigs = {
        addr(i): "0x" + bytes(Account.sign_typed_data(key(i), full_message=typed).signature).hex()
        for i in (CONSUMER, PROVIDER)
    }
    posted = {"entry_type": "UsageReceipt", "entry": sample_json()["UsageReceipt"]}
    signed = SignedEntry.from_json(posted | {"signatures": sigs}, domain=DOMAIN)
    assert signed.verify(DOMAIN) == {addr(CONSUMER), addr(PROVIDER)}


def test_missing_countersignature_is_named() -> None:
    signed, _ = signed_sample("UsageReceipt")
    only_consumer = {addr(CONSUMER): signed.signatures[addr(CONSUMER)]}
    half = SignedEntry(entry=signed.entry, domain=DOMAIN, signatures=only_consumer)
    with pytest.raises(SignerMismatch) as info:
        half.verify(DOMAIN)
    assert f"missing signature of {addr(PROVIDER)}" in info.value.message
    assert info.value.detail["missing"] == [addr(PROVIDER)]


def test_unexpected_signer_is_named() -> None:
    signed, _ = signed_sample("UsageReceipt")
    extra = sign_entry(signed.entry, DOMAIN, [key(CONSUMER), key(PROVIDER), key(STRANGER)])
    with pytest.raises(SignerMismatch, match=f"unexpected signature of {addr(STRANGER)}"):
        extra.verify(DOMAIN)
    # the operator's countersignature is unexpected unless the policy asks for it
    cd, _ = signed_sample("ContributionDeclaration")
    with pytest.raises(SignerMismatch, match=f"unexpected signature of {addr(OPERATOR)}"):
        cd.verify(DOMAIN)
    only_provider = sign_entry(cd.entry, DOMAIN, [key(PROVIDER)])
    assert only_provider.verify(DOMAIN) == {addr(PROVIDER)}
    with pytest.raises(SignerMismatch, match=f"missing signature of {addr(OPERATOR)}"):
        only_provider.verify(DOMAIN, operator=addr(OPERATOR))


def test_attestation_by_someone_else_than_the_stated_attester_fails() -> None:
    signed, _ = signed_sample("QualityAttestation")
    with pytest.raises(SignerMismatch):
        signed.verify(DOMAIN, attester=addr(CONSUMER))


def test_signature_filed_under_the_wrong_signer_fails() -> None:
    signed, _ = signed_sample("UsageReceipt")
    swapped = {
        addr(CONSUMER): signed.signatures[addr(PROVIDER)],
        addr(PROVIDER): signed.signatures[addr(CONSUMER)],
    }
    bad = SignedEntry(entry=signed.entry, domain=DOMAIN, signatures=swapped)
    with pytest.raises(InvalidSignature, match="was made by"):
        bad.verify(DOMAIN)


def test_signatures_for_another_deployment_fail() -> None:
    signed, _ = signed_sample("UsageReceipt")
    other_chain = Domain(chain_id=1, verifying_contract=LEDGER)
    other_ledger = Domain(chain_id=31337, verifying_contract="0x" + "ab" * 20)
    for other in (other_chain, other_ledger):
        # the entry says which deployment it is for: refused by the deployment check
        with pytest.raises(InvalidSignature, match="signed for chain"):
            signed.verify(other)
        # re-labelled with the other domain: the signatures recover to other keys
        relabelled = SignedEntry(entry=signed.entry, domain=other, signatures=signed.signatures)
        with pytest.raises(InvalidSignature, match="was made by"):
            relabelled.verify(other)


def tampered_values(sol: str, value: Any) -> list[Any]:
    """Valid values of the same type that differ from ``value``."""
    if sol == "bytes32":
        return [bytes((value[0] ^ 1,)) + value[1:], value[:-1] + bytes((value[-1] ^ 0x80,))]
    if sol == "address":
        return [addr(STRANGER)]
    if sol == "address[]":
        return [by_address([*value, addr(STRANGER)]), value[:1]]
    if sol == "uint256[]":
        return [[*value[:-1], value[-1] + 1]]
    if sol == "uint8":
        return [2 if value == 1 else 1]
    return [value + 1, value - 1]


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_every_field_tampered_fails_verification(type_name: str) -> None:
    signed, context = signed_sample(type_name)
    original = signed.entry.model_dump()
    tried = 0
    for field, sol in issue_fields(type_name):
        for new in tampered_values(sol, original[field]):
            try:
                entry = parse_entry(type_name, original | {field: new})
            except InvalidEntry:
                continue  # e.g. periodStart + 1 == periodEnd is not a valid entry anyway
            tried += 1
            assert entry.digest(DOMAIN) != signed.entry.digest(DOMAIN), field
            forged = SignedEntry(entry=entry, domain=DOMAIN, signatures=signed.signatures)
            with pytest.raises(InvalidSignature):
                forged.verify(DOMAIN, **context)
            with pytest.raises(InvalidSignature):
                forged.recover()
    assert tried >= len(issue_fields(type_name))


# --- canonical bytes ------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_canonical_bytes_follow_the_documented_layout(type_name: str) -> None:
    signed, _ = signed_sample(type_name)
    data = encode_entry(signed)
    posted = sample_json()[type_name]
    signable = encode_typed_data(full_message=eth_account_typed(type_name, posted, DOMAIN))
    fields = issue_fields(type_name)
    raw_values = [signed.entry.model_dump()[n] for n, _ in fields]
    message = abi_encode([t for _, t in fields], raw_values)

    assert data[:14] == b"TALLY-ENTRY-V1"
    assert data[14] == EntryType[_snake(type_name)].value
    assert data[15:47] == (31337).to_bytes(32, "big")
    assert data[47:67] == bytes.fromhex(LEDGER[2:])
    assert data[67:99] == signable.header
    assert data[99:131] == signable.body
    assert int.from_bytes(data[131:135], "big") == len(message)
    end = 135 + len(message)
    assert data[135:end] == message
    count = int.from_bytes(data[end : end + 2], "big")
    assert count == len(SIGNERS[type_name][0])
    records = [data[end + 2 + 85 * i : end + 2 + 85 * (i + 1)] for i in range(count)]
    assert len(data) == end + 2 + 85 * count
    signers = [r[:20] for r in records]
    assert signers == sorted(signers)
    for record in records:
        recovered = Account.recover_message(signable, signature=record[20:])
        assert bytes.fromhex(recovered[2:]) == record[:20]
    assert entry_id(data) == hashlib.sha256(data).digest()


def _snake(type_name: str) -> str:
    return "".join("_" + c if c.isupper() else c for c in type_name).lstrip("_").upper()


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_canonical_bytes_round_trip(type_name: str) -> None:
    signed, context = signed_sample(type_name)
    data = encode_entry(signed)
    decoded = decode_entry(data)
    assert decoded == signed
    assert decoded.domain == DOMAIN
    assert encode_entry(decoded) == data
    assert decoded.verify(DOMAIN, **context) == signed.verify(DOMAIN, **context)


nonzero_addresses = st.binary(min_size=20, max_size=20).filter(any)


@st.composite
def receipts(draw: st.DrawFn) -> UsageReceipt:
    consumer, provider = draw(st.lists(nonzero_addresses, min_size=2, max_size=2, unique=True))
    start = draw(st.integers(0, (1 << 64) - 2))
    end = draw(st.integers(start + 1, (1 << 64) - 1))
    return UsageReceipt(
        agreementId=draw(st.binary(min_size=32, max_size=32)),
        consumer=eu_checksum(consumer),
        provider=eu_checksum(provider),
        units=draw(st.integers(0, (1 << 64) - 1)),
        periodStart=start,
        periodEnd=end,
        detailHash=draw(st.binary(min_size=32, max_size=32)),
        nonce=draw(st.integers(0, (1 << 64) - 1)),
    )


@st.composite
def coalitions(draw: st.DrawFn) -> CoalitionValues:
    n = draw(st.integers(1, 4))
    providers = draw(st.lists(nonzero_addresses, min_size=n, max_size=n, unique=True))
    return CoalitionValues(
        agreementId=draw(st.binary(min_size=32, max_size=32)),
        periodStart=0,
        periodEnd=draw(st.integers(1, (1 << 64) - 1)),
        providers=tuple(eu_checksum(p) for p in sorted(providers)),
        values=tuple(
            draw(st.lists(st.integers(0, (1 << 256) - 1), min_size=1 << n, max_size=1 << n))
        ),
    )


@SETTINGS
@given(st.one_of(receipts(), coalitions()), st.integers(1, (1 << 256) - 1))
def test_canonical_bytes_round_trip_any_entry(entry: Any, chain_id: int) -> None:
    domain = Domain(chain_id=chain_id, verifying_contract=LEDGER)
    signed = SignedEntry(
        entry=entry,
        domain=domain,
        signatures={addr(i): sign_digest(entry.digest(domain), key(i)) for i in (1, 2)},
    )
    data = encode_entry(signed)
    assert decode_entry(data) == signed
    assert encode_entry(decode_entry(data)) == data
    expected_message = abi_encode(list(entry.eip712_type.field_types), entry.eip712_values())
    assert expected_message in data


def test_id_ignores_signature_order_and_v_convention() -> None:
    signed, _ = signed_sample("Agreement")
    items = list(signed.signatures.items())
    reversed_order = SignedEntry(entry=signed.entry, domain=DOMAIN, signatures=dict(items[::-1]))
    raw_v = {s: sig[:64] + bytes((sig[64] - 27,)) for s, sig in items}
    as_zero_one = SignedEntry(entry=signed.entry, domain=DOMAIN, signatures=raw_v)
    lower_keys = SignedEntry(
        entry=signed.entry, domain=DOMAIN, signatures={s.lower(): sig for s, sig in items}
    )
    via_json = SignedEntry.from_json(signed.to_json(), domain=DOMAIN)
    ids = {x.id() for x in (signed, reversed_order, as_zero_one, lower_keys, via_json)}
    assert ids == {hashlib.sha256(encode_entry(signed)).digest()}
    assert reversed_order == signed and hash(reversed_order) == hash(signed)


def test_id_changes_with_message_domain_or_signatures() -> None:
    signed, _ = signed_sample("UsageReceipt")
    other_nonce = parse_entry("UsageReceipt", sample_json()["UsageReceipt"] | {"nonce": 43})
    other_msg = sign_entry(other_nonce, DOMAIN, [key(CONSUMER), key(PROVIDER)])
    other_domain = Domain(chain_id=1, verifying_contract=LEDGER)
    other_dom = sign_entry(signed.entry, other_domain, [key(CONSUMER), key(PROVIDER)])
    one_sig = SignedEntry(
        entry=signed.entry,
        domain=DOMAIN,
        signatures={addr(CONSUMER): signed.signatures[addr(CONSUMER)]},
    )
    assert len({signed.id(), other_msg.id(), other_dom.id(), one_sig.id()}) == 4


def test_signed_entry_pickles() -> None:
    signed, _ = signed_sample("Agreement")
    copy = pickle.loads(pickle.dumps(signed))
    assert copy == signed
    assert list(copy.signatures) == list(signed.signatures)
    assert copy.id() == signed.id()


def test_duplicate_signer_is_refused() -> None:
    signed, _ = signed_sample("UsageReceipt")
    sig = signed.signatures[addr(CONSUMER)]
    with pytest.raises(InvalidSignature, match="two signatures"):
        SignedEntry(
            entry=signed.entry,
            domain=DOMAIN,
            signatures={addr(CONSUMER): sig, addr(CONSUMER).lower(): sig},
        )


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes((data[index] ^ 1,)) + data[index + 1 :]


def test_decode_refuses_non_canonical_bytes() -> None:
    signed, _ = signed_sample("Agreement")
    data = encode_entry(signed)
    message_len = int.from_bytes(data[131:135], "big")
    records = 135 + message_len + 2
    r0, r1 = data[records : records + 85], data[records + 85 : records + 170]
    cases = {
        "truncated": data[:-1],
        "trailing": data + b"\x00",
        "magic": b"TALLY-ENTRY-V2" + data[14:],
        "tag": data[:14] + b"\x09" + data[15:],
        "wrong tag": data[:14] + b"\x02" + data[15:],
        "separator": _flip(data, 70),
        "struct hash": _flip(data, 100),
        "chain id": _flip(data, 46),
        "message": _flip(data, 135 + 5),
        "dirty padding": _flip(data, 135 + 2 * 32 + 3),  # inside the consumer address word
        "unsorted": data[:records] + r1 + r0 + data[records + 170 :],
        "duplicate": data[:records] + r0 + r0 + data[records + 170 :],
        "v zero": data[: records + 84] + bytes((data[records + 84] - 27,)) + data[records + 85 :],
        "empty": b"",
    }
    for name, bad in cases.items():
        with pytest.raises(InvalidEntry):
            decode_entry(bad)
        assert bad != data, name


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(TYPE_NAMES),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=3),
    st.integers(0, 10_000),
)
def test_decode_of_corrupted_bytes_is_refused_or_canonical(
    type_name: str, edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(encode_entry(signed_sample(type_name)[0]))
    for index, value in edits:
        data[index % len(data)] = value
    corrupted = bytes(data[: len(data) - cut % 8])
    try:
        decoded = decode_entry(corrupted)
    except InvalidEntry:
        return
    # whatever is accepted must be exactly the canonical bytes of what was decoded
    assert encode_entry(decoded) == corrupted


def test_decode_refuses_invalid_entries_inside_valid_abi() -> None:
    signed, _ = signed_sample("UsageReceipt")
    entry = signed.entry
    assert isinstance(entry, UsageReceipt)
    # hand-build bytes for a receipt whose period is reversed: valid ABI, invalid entry
    values = list(entry.eip712_values())
    values[4], values[5] = values[5], values[4]
    message = abi_encode(list(entry.eip712_type.field_types), values)
    struct_hash = entry.eip712_type.hash_struct(values)
    data = (
        b"TALLY-ENTRY-V1"
        + b"\x02"
        + (31337).to_bytes(32, "big")
        + bytes.fromhex(LEDGER[2:])
        + DOMAIN.separator
        + struct_hash
        + len(message).to_bytes(4, "big")
        + message
        + b"\x00\x00"
    )
    with pytest.raises(InvalidEntry, match="periodStart"):
        decode_entry(data)


# --- JSON form --------------------------------------------------------------------------------


def test_signed_entry_json_round_trip() -> None:
    signed, _ = signed_sample("CoalitionValues")
    doc = signed.to_json()
    assert doc["entry_type"] == "CoalitionValues"
    assert doc["entry"] == sample_json()["CoalitionValues"]
    assert doc["signatures"] == {addr(EVALUATOR): "0x" + signed.signatures[addr(EVALUATOR)].hex()}
    assert SignedEntry.from_json(doc, domain=DOMAIN) == signed


def test_signed_entry_json_errors_are_clear() -> None:
    signed, _ = signed_sample("UsageReceipt")
    doc = signed.to_json()
    with pytest.raises(InvalidEntry, match="missing signatures"):
        SignedEntry.from_json({k: v for k, v in doc.items() if k != "signatures"}, domain=DOMAIN)
    with pytest.raises(InvalidSignature, match="non-empty"):
        SignedEntry.from_json(doc | {"signatures": {}}, domain=DOMAIN)
    with pytest.raises(InvalidSignature, match="signer 'bob'"):
        SignedEntry.from_json(doc | {"signatures": {"bob": "0x" + "11" * 65}}, domain=DOMAIN)
    short = {addr(CONSUMER): "0x" + "11" * 64}
    with pytest.raises(InvalidSignature, match="65 bytes"):
        SignedEntry.from_json(doc | {"signatures": short}, domain=DOMAIN)
    with pytest.raises(InvalidEntry, match="units"):
        SignedEntry.from_json(doc | {"entry": doc["entry"] | {"units": -1}}, domain=DOMAIN)
    with pytest.raises(InvalidEntry, match="JSON object"):
        SignedEntry.from_json("nope", domain=DOMAIN)


# --- batches -----------------------------------------------------------------------------------


def _batch() -> tuple[list[SignedEntry], dict[int, str]]:
    base = sample_json()["UsageReceipt"]
    entries = [
        sign_entry(
            parse_entry("UsageReceipt", base | {"nonce": n}), DOMAIN, [key(CONSUMER), key(PROVIDER)]
        )
        for n in range(12)
    ]
    # index -> expected error words
    bad: dict[int, str] = {}
    half = {addr(CONSUMER): entries[3].signatures[addr(CONSUMER)]}
    entries[3] = SignedEntry(entry=entries[3].entry, domain=DOMAIN, signatures=half)
    bad[3] = "missing signature"
    swapped = dict(entries[7].signatures)
    swapped[addr(PROVIDER)] = entries[8].signatures[addr(PROVIDER)]  # another receipt's
    entries[7] = SignedEntry(entry=entries[7].entry, domain=DOMAIN, signatures=swapped)
    bad[7] = "was made by"
    other = Domain(chain_id=5, verifying_contract=LEDGER)
    entries[10] = sign_entry(entries[10].entry, other, [key(CONSUMER), key(PROVIDER)])
    bad[10] = "signed for chain"
    return entries, bad


def _check_batch(results: list[Any], bad: dict[int, str]) -> None:
    assert len(results) == 12
    for i, result in enumerate(results):
        if i in bad:
            assert not result.ok and bad[i] in result.error.message, i
            assert result.signers == frozenset()
        else:
            assert result.ok, (i, result.error)
            assert result.signers == {addr(CONSUMER), addr(PROVIDER)}


def test_verify_many_in_process_reports_per_item() -> None:
    entries, bad = _batch()
    _check_batch(verify_many(entries, DOMAIN, workers=1), bad)


def test_verify_many_process_pool_gives_the_same_results() -> None:
    entries, bad = _batch()
    try:
        _check_batch(verify_many(entries, DOMAIN, workers=2, min_parallel=1), bad)
        assert 2 in entries_module._pools  # the work really went through worker processes
    finally:
        shutdown_verify_pools()


def test_verify_many_finishes_in_process_when_its_workers_were_killed() -> None:
    entries, bad = _batch()
    try:
        verify_many(entries, DOMAIN, workers=2, min_parallel=1)  # the pool is up
        executor = entries_module._pools[2].executor
        for process in list(executor._processes.values()):  # the OOM killer, say
            process.kill()
            process.join()
        _check_batch(verify_many(entries, DOMAIN, workers=2, min_parallel=1), bad)
        assert 2 not in entries_module._pools  # the broken pool was dropped
        _check_batch(verify_many(entries, DOMAIN, workers=2, min_parallel=1), bad)
        assert entries_module._pools[2].executor is not executor  # and a new one started
    finally:
        shutdown_verify_pools()


def test_begin_verify_uses_the_digests_it_is_given() -> None:
    entries, bad = _batch()
    digests = [e.digest() for e in entries]
    _check_batch(begin_verify(entries, DOMAIN, workers=1, digests=digests)(), bad)
    digests[0] = digests[1]  # entry 0's signatures are not over entry 1's digest
    results = begin_verify(entries, DOMAIN, workers=1, digests=digests)()
    assert not results[0].ok and "was made by" in results[0].error.message
    with pytest.raises(ValueError, match="digests"):
        begin_verify(entries, DOMAIN, workers=1, digests=digests[:3])


def test_verify_many_takes_explicit_signer_sets() -> None:
    qa, _ = signed_sample("QualityAttestation")
    receipt, _ = signed_sample("UsageReceipt")
    results = verify_many(
        [qa, receipt, qa],
        DOMAIN,
        workers=1,
        required=[frozenset({addr(AUDITOR)}), None, frozenset({addr(CONSUMER)})],
    )
    assert [r.ok for r in results] == [True, True, False]
    assert isinstance(results[2].error, SignerMismatch)
    with pytest.raises(ValueError, match="attester"):
        verify_many([qa], DOMAIN, workers=1)
