"""EIP-712 hashing, signing and recovery, checked against eth_account / eth_abi / eth_utils.

Expected values come from independent implementations (eth_account's typed-data encoder
and signer, eth_abi, eth_utils, pycryptodome, eth_keys) or from the EIP definitions
written out here, never from the module under test.
"""

from __future__ import annotations

from typing import Any

import pytest
from Crypto.Hash import keccak as cryptodome_keccak
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys import KeyAPI
from eth_utils import keccak as eth_utils_keccak
from eth_utils import to_checksum_address as eu_checksum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import InvalidSignature
from service.evidence.eip712 import (
    SECP256K1_N,
    Domain,
    StructType,
    keccak256,
    normalize_signature,
    parse_address,
    parse_signature,
    private_key_to_address,
    public_key_to_address,
    recover_jobs,
    recover_signer,
    sign_digest,
    to_checksum_address,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LEDGER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
KEY_A = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
KEY_B = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")

# The domain type and the five entry types exactly as written in issue T3.
DOMAIN_TYPES = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
ISSUE_TYPES: dict[str, list[tuple[str, str]]] = {
    "Agreement": [
        ("agreementId", "bytes32"),
        ("assetId", "bytes32"),
        ("consumer", "address"),
        ("providers", "address[]"),
        ("unitPrice", "uint256"),
        ("policyHash", "bytes32"),
        ("validFrom", "uint64"),
        ("validUntil", "uint64"),
    ],
    "UsageReceipt": [
        ("agreementId", "bytes32"),
        ("consumer", "address"),
        ("provider", "address"),
        ("units", "uint64"),
        ("periodStart", "uint64"),
        ("periodEnd", "uint64"),
        ("detailHash", "bytes32"),
        ("nonce", "uint64"),
    ],
    "QualityAttestation": [
        ("agreementId", "bytes32"),
        ("provider", "address"),
        ("periodStart", "uint64"),
        ("periodEnd", "uint64"),
        ("scoreBps", "uint16"),
    ],
    "ContributionDeclaration": [
        ("agreementId", "bytes32"),
        ("provider", "address"),
        ("kind", "uint8"),
        ("value", "uint256"),
        ("periodStart", "uint64"),
        ("periodEnd", "uint64"),
    ],
    "CoalitionValues": [
        ("agreementId", "bytes32"),
        ("periodStart", "uint64"),
        ("periodEnd", "uint64"),
        ("providers", "address[]"),
        ("values", "uint256[]"),
    ],
}


def full_message(
    type_name: str, message: dict[str, Any], chain_id: int, contract: str
) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": DOMAIN_TYPES,
            type_name: [{"name": n, "type": t} for n, t in ISSUE_TYPES[type_name]],
        },
        "primaryType": type_name,
        "domain": {
            "name": "Tally",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": contract,
        },
        "message": message,
    }


def eip191_digest(signable: Any) -> bytes:
    """EIP-191 version 0x01: keccak(0x19 || version || header || body)."""
    return bytes(eth_utils_keccak(b"\x19" + signable.version + signable.header + signable.body))


# --- strategies ---------------------------------------------------------------------------

addresses = st.binary(min_size=20, max_size=20).map(eu_checksum)
bytes32s = st.binary(min_size=32, max_size=32)


def uints(bits: int) -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=(1 << bits) - 1)


def value_for(sol: str) -> st.SearchStrategy[Any]:
    if sol == "bytes32":
        return bytes32s
    if sol == "address":
        return addresses
    if sol.startswith("uint") and not sol.endswith("[]"):
        return uints(int(sol[4:]))
    if sol == "address[]":
        return st.lists(addresses, max_size=5)
    if sol == "uint256[]":
        return st.lists(uints(256), max_size=9)
    raise AssertionError(sol)


@st.composite
def raw_messages(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """Any message of any of the five types (EIP-712 level: no Tally business rules)."""
    type_name = draw(st.sampled_from(sorted(ISSUE_TYPES)))
    message = {name: draw(value_for(sol)) for name, sol in ISSUE_TYPES[type_name]}
    return type_name, message


def struct_of(type_name: str) -> StructType:
    return StructType(type_name, tuple(ISSUE_TYPES[type_name]))


# --- keccak and addresses -------------------------------------------------------------


def test_keccak256_matches_known_vectors() -> None:
    # Keccak-256 (not NIST SHA3-256) of "" and of "abc".
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert keccak256(b"abc").hex() == (
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    )


@FAST
@given(st.binary(max_size=300))
def test_keccak256_matches_pycryptodome(data: bytes) -> None:
    expected = cryptodome_keccak.new(data=data, digest_bits=256).digest()
    assert keccak256(data) == expected


@pytest.mark.parametrize(
    "address",
    [  # the EIP-55 specification's examples
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ],
)
def test_checksum_matches_eip55_examples(address: str) -> None:
    assert to_checksum_address(address.lower()) == address
    assert to_checksum_address(bytes.fromhex(address[2:])) == address
    assert parse_address(address.lower()) == address
    assert parse_address("0x" + address[2:].upper()) == address


@FAST
@given(st.binary(min_size=20, max_size=20))
def test_checksum_matches_eth_utils(raw: bytes) -> None:
    assert to_checksum_address(raw) == eu_checksum(raw)


def test_parse_address_rejects_wrong_checksum_and_bad_shapes() -> None:
    good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    wrong_case = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    with pytest.raises(ValueError, match="EIP-55"):
        parse_address(wrong_case)
    for bad in (good[:-1], good + "0", good[2:], "0x" + "g" * 40, "", 5, None, b"\x00" * 20):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_addresses_from_keys_match_eth_account() -> None:
    for key in (KEY_A, KEY_B):
        expected = Account.from_key(key).address
        assert private_key_to_address(key) == expected
        public = KeyAPI().PrivateKey(key).public_key.to_bytes()  # 64 bytes x || y
        assert public_key_to_address(public) == expected
        assert public_key_to_address(b"\x04" + public) == expected


# --- type strings, domain, struct hashes ------------------------------------------------


def test_type_strings_follow_eip712_encode_type() -> None:
    assert struct_of("UsageReceipt").type_string == (
        "UsageReceipt(bytes32 agreementId,address consumer,address provider,uint64 units,"
        "uint64 periodStart,uint64 periodEnd,bytes32 detailHash,uint64 nonce)"
    )
    assert struct_of("CoalitionValues").type_string == (
        "CoalitionValues(bytes32 agreementId,uint64 periodStart,uint64 periodEnd,"
        "address[] providers,uint256[] values)"
    )
    st_ = struct_of("Agreement")
    assert st_.type_hash == bytes(eth_utils_keccak(text=st_.type_string))


def test_struct_type_rejects_unsupported_field_types() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        StructType("X", (("a", "bytes"),))
    with pytest.raises(ValueError, match="unsupported"):
        StructType("X", (("a", "Person"),))


@FAST
@given(
    chain_id=st.integers(min_value=1, max_value=(1 << 256) - 1),
    contract=addresses,
)
def test_domain_separator_matches_eth_account(chain_id: int, contract: str) -> None:
    signable = encode_typed_data(
        full_message=full_message("QualityAttestation", _qa_message(), chain_id, contract)
    )
    domain = Domain(chain_id=chain_id, verifying_contract=contract.lower())
    assert domain.separator == signable.header
    assert domain.verifying_contract == contract
    assert domain.to_json() == {
        "name": "Tally",
        "version": "1",
        "chainId": chain_id,
        "verifyingContract": contract,
    }


def test_domain_rejects_bad_chain_id_and_contract() -> None:
    for chain_id in (0, -1, 1 << 256, True):
        with pytest.raises(ValueError):
            Domain(chain_id=chain_id, verifying_contract=LEDGER)
    with pytest.raises(ValueError):
        Domain(chain_id=1, verifying_contract="0x1234")


def _qa_message() -> dict[str, Any]:
    return {
        "agreementId": b"\x11" * 32,
        "provider": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "periodStart": 1_700_000_000,
        "periodEnd": 1_700_086_400,
        "scoreBps": 9_250,
    }


@FAST
@given(raw_messages(), st.integers(min_value=1, max_value=(1 << 64)), addresses)
def test_struct_hash_and_digest_match_eth_account(
    typed: tuple[str, dict[str, Any]], chain_id: int, contract: str
) -> None:
    type_name, message = typed
    struct = struct_of(type_name)
    values = [message[name] for name in struct.field_names]
    signable = encode_typed_data(full_message=full_message(type_name, message, chain_id, contract))
    domain = Domain(chain_id=chain_id, verifying_contract=contract)
    assert struct.hash_struct(values) == signable.body
    assert domain.digest(struct.hash_struct(values)) == eip191_digest(signable)


@SLOW
@given(raw_messages())
def test_digest_matches_eth_account_sign_typed_data(typed: tuple[str, dict[str, Any]]) -> None:
    type_name, message = typed
    struct = struct_of(type_name)
    domain = Domain(chain_id=31337, verifying_contract=LEDGER)
    signed = Account.sign_typed_data(
        KEY_A, full_message=full_message(type_name, message, 31337, LEDGER)
    )
    digest = domain.digest(struct.hash_struct([message[n] for n in struct.field_names]))
    assert digest == bytes(signed.message_hash)
    # both sides use RFC 6979 deterministic nonces, so the signatures are identical
    assert sign_digest(digest, KEY_A) == bytes(signed.signature)
    assert recover_signer(digest, bytes(signed.signature)) == Account.from_key(KEY_A).address


@FAST
@given(raw_messages())
def test_abi_encode_matches_eth_abi(typed: tuple[str, dict[str, Any]]) -> None:
    type_name, message = typed
    struct = struct_of(type_name)
    values = [message[n] for n in struct.field_names]
    assert struct.abi_encode(values) == abi_encode(list(struct.field_types), values)


@pytest.mark.parametrize(
    ("sol", "bad"),
    [
        ("uint64", 1 << 64),
        ("uint64", -1),
        ("uint8", 256),
        ("uint16", True),
        ("uint256", 1.0),
        ("bytes32", b"\x00" * 31),
        ("bytes32", "0x" + "00" * 32),
    ],
)
def test_encode_data_refuses_values_the_type_cannot_hold(sol: str, bad: object) -> None:
    struct = StructType("T", (("x", sol),))
    with pytest.raises(ValueError):
        struct.encode_data([bad])
    with pytest.raises(ValueError):
        struct.abi_encode([bad])


# --- signing and recovery ---------------------------------------------------------------


def _typed_digest(chain_id: int = 31337, contract: str = LEDGER) -> tuple[bytes, dict[str, Any]]:
    fm = full_message("QualityAttestation", _qa_message(), chain_id, contract)
    return eip191_digest(encode_typed_data(full_message=fm)), fm


def test_our_signature_recovers_with_eth_account() -> None:
    digest, fm = _typed_digest()
    sig = sign_digest(digest, KEY_B)
    assert len(sig) == 65 and sig[64] in (27, 28)
    recovered = Account.recover_message(encode_typed_data(full_message=fm), signature=sig)
    assert recovered == Account.from_key(KEY_B).address


def test_eth_account_signature_recovers_with_ours() -> None:
    digest, fm = _typed_digest()
    signed = Account.sign_typed_data(KEY_A, full_message=fm)
    assert recover_signer(digest, bytes(signed.signature)) == Account.from_key(KEY_A).address


def test_wrong_chain_id_or_contract_recovers_someone_else() -> None:
    digest, _ = _typed_digest()
    sig = sign_digest(digest, KEY_A)
    signer = Account.from_key(KEY_A).address
    other_chain, _ = _typed_digest(chain_id=1)
    other_contract, _ = _typed_digest(contract="0x" + "ab" * 20)
    assert recover_signer(digest, sig) == signer
    assert recover_signer(other_chain, sig) != signer
    assert recover_signer(other_contract, sig) != signer


def _high_s_twin(sig: bytes) -> bytes:
    """The malleated twin (r, n - s, flipped v): a valid ECDSA signature with high s."""
    s = int.from_bytes(sig[32:64], "big")
    flipped = 28 if sig[64] == 27 else 27
    return sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes((flipped,))


def test_high_s_twin_is_rejected() -> None:
    digest, _ = _typed_digest()
    sig = sign_digest(digest, KEY_A)
    twin = _high_s_twin(sig)
    # the twin really is a valid signature by the same key (eth_keys accepts it) ...
    key_api = KeyAPI()
    vrs_twin = key_api.Signature(
        vrs=(twin[64] - 27, int.from_bytes(twin[:32], "big"), int.from_bytes(twin[32:64], "big"))
    )
    assert key_api.ecdsa_recover(digest, vrs_twin).to_checksum_address() == (
        Account.from_key(KEY_A).address
    )
    # ... and we refuse it (EIP-2)
    with pytest.raises(InvalidSignature, match="EIP-2"):
        recover_signer(digest, twin)
    with pytest.raises(InvalidSignature, match="EIP-2"):
        normalize_signature(twin)


def test_v_zero_one_accepted_and_normalised() -> None:
    digest, _ = _typed_digest()
    sig = sign_digest(digest, KEY_A)
    raw_v = sig[:64] + bytes((sig[64] - 27,))
    assert normalize_signature(raw_v) == sig
    assert recover_signer(digest, raw_v) == Account.from_key(KEY_A).address
    assert parse_signature("0x" + raw_v.hex()) == sig


@pytest.mark.parametrize("v", [2, 26, 29, 35, 36, 255])
def test_other_v_values_rejected(v: int) -> None:
    digest, _ = _typed_digest()
    sig = sign_digest(digest, KEY_A)
    with pytest.raises(InvalidSignature, match="v must be"):
        recover_signer(digest, sig[:64] + bytes((v,)))


@pytest.mark.parametrize("length", [0, 64, 66, 130])
def test_malformed_lengths_rejected(length: int) -> None:
    digest, _ = _typed_digest()
    with pytest.raises(InvalidSignature, match="65 bytes"):
        recover_signer(digest, b"\x01" * length)


def test_out_of_range_r_and_s_rejected() -> None:
    digest, _ = _typed_digest()
    sig = sign_digest(digest, KEY_A)
    zero = bytes(32)
    n_bytes = SECP256K1_N.to_bytes(32, "big")
    for bad in (
        zero + sig[32:],
        n_bytes + sig[32:],
        sig[:32] + zero + sig[64:],
        sig[:32] + n_bytes + sig[64:],
    ):
        with pytest.raises(InvalidSignature, match="out of range"):
            recover_signer(digest, bad)


def test_parse_signature_rejects_bad_hex() -> None:
    sig = sign_digest(bytes(32), KEY_A)
    good = "0x" + sig.hex()
    assert parse_signature(good) == sig
    for bad in (good[2:], good[:-2], good + "00", "0x" + "zz" * 65, 5):
        with pytest.raises(InvalidSignature):
            parse_signature(bad)


def test_recover_jobs_reports_errors_per_item() -> None:
    digest, _ = _typed_digest()
    sig = sign_digest(digest, KEY_A)
    out = recover_jobs([(digest, sig), (digest, sig[:64]), (digest, _high_s_twin(sig))])
    assert out[0] == bytes.fromhex(Account.from_key(KEY_A).address[2:])
    assert isinstance(out[1], str) and "65 bytes" in out[1]
    assert isinstance(out[2], str) and "EIP-2" in out[2]
