"""EIP-4361 messages: the spec's example parses and prints back byte for byte; the
grammar's optional parts; malformed messages are refused; the EIP-191 digest matches
eth-account's independent implementation."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from service.api.siwe import SiweMessage, parse, personal_digest
from service.errors import SignInRejected
from service.evidence.eip712 import recover_signer

# The example message of EIP-4361 ("Example message"), verbatim.
SPEC_EXAMPLE = """example.com wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ExampleOrg Terms of Service: https://example.com/tos

URI: https://example.com/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json"""


def test_spec_example_parses_and_round_trips() -> None:
    msg = parse(SPEC_EXAMPLE)
    assert msg.domain == "example.com"
    assert msg.address == "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
    assert msg.statement == "I accept the ExampleOrg Terms of Service: https://example.com/tos"
    assert msg.uri == "https://example.com/login"
    assert msg.chain_id == 1
    assert msg.nonce == "32891756"
    assert msg.issued_at == "2021-09-30T16:25:24Z"
    assert msg.expiration_time is None
    assert msg.resources == (
        "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
        "https://example.com/my-web2-claim.json",
    )
    assert msg.text() == SPEC_EXAMPLE


def test_optional_fields_scheme_and_no_statement_round_trip() -> None:
    msg = SiweMessage(
        scheme="https",
        domain="tally.example:8443",
        address="0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        uri="https://tally.example:8443",
        chain_id=31337,
        nonce="abcdef0123456789",
        issued_at="2025-01-01T00:00:00Z",
        expiration_time="2025-01-01T00:05:00Z",
        not_before="2025-01-01T00:00:00Z",
        request_id="req-1",
    )
    text = msg.text()
    lines = text.split("\n")
    assert lines[0] == "https://tally.example:8443 wants you to sign in with your Ethereum account:"
    assert lines[2:4] == ["", ""]  # no statement: two empty lines (address LF LF LF URI)
    assert lines[4] == "URI: https://tally.example:8443"
    assert lines[-1] == "Request ID: req-1"
    assert parse(text) == msg


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda t: t.replace("example.com wants", "example.com needs"), "first line"),
        (
            lambda t: t.replace("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", "0x" + "c0" * 20),
            "checksum",
        ),
        (lambda t: t.replace("Nonce: 32891756", "Nonce: 123"), "nonce"),
        (lambda t: t.replace("Version: 1", "Version: 2"), "version"),
        (lambda t: t.replace("Chain ID: 1", "Chain ID: one"), "Chain ID"),
        (
            lambda t: t.replace("Issued At: 2021-09-30T16:25:24Z", "Issued At: yesterday"),
            "RFC 3339",
        ),
        (lambda t: t.replace("Nonce: 32891756\n", ""), "nonce"),
        (lambda t: t.replace("Version: 1\nChain ID: 1", "Chain ID: 1\nVersion: 1"), "unexpected"),
        (lambda t: t.replace("\n", "\r\n"), "LF"),
        (lambda t: t + "\nExtra: line", "resource"),
    ],
)
def test_malformed_messages_are_refused(mutate: object, match: str) -> None:
    with pytest.raises(SignInRejected, match=match):
        parse(mutate(SPEC_EXAMPLE))  # type: ignore[operator]


def test_personal_sign_digest_matches_eth_account() -> None:
    acct = Account.create()
    msg = parse(SPEC_EXAMPLE.replace("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", acct.address))
    signed = Account.sign_message(encode_defunct(text=msg.text()), private_key=acct.key)
    assert recover_signer(msg.digest(), bytes(signed.signature)) == acct.address
    assert personal_digest(msg.text().encode()) == bytes(signed.message_hash)
