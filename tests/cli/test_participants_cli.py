"""`tally participants add|suspend|reinstate|list` on a real anvil, through the real
`tally` app (its one-line error printer included)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from service.chain.client import Chain
from service.chain.config import save_deployment
from service.chain.deploy import deploy_tally
from service.chain.keys import dev_account
from service.chain.participants import ROLE_BITS, parse_admissions
from service.cli import app
from service.errors import InvalidInput, UnknownRole

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "participants.csv"


@dataclass
class Deployed:
    chain: Chain
    registry: Any
    url: str
    deployment: Path

    def args(self) -> list[str]:
        return ["--rpc", self.url, "--deployment", str(self.deployment)]

    def record(self, address: str) -> tuple[Any, ...]:
        return tuple(self.chain.call(self.registry.functions.participant(address)))

    def height(self) -> int:
        return int(self.chain.w3.eth.block_number)


def _deploy(chain: Chain, folder: Path, *, admin_index: int = 0) -> Deployed:
    contracts = deploy_tally(chain, admin=dev_account(admin_index))
    path = folder / "deployment.json"
    save_deployment(contracts.deployment, path)
    assert chain.network.rpc_url is not None
    return Deployed(chain, contracts.registry, chain.network.rpc_url, path)


@pytest.fixture
def space(anvil_chain: Chain, tmp_path: Path) -> Deployed:
    return _deploy(anvil_chain, tmp_path)


def tally(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the `tally` app in process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        app(list(args), prog_name="tally")
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    yield lambda *args: tally(capsys, *args)


def test_add_from_file_admits_the_example_accounts_and_again_changes_nothing(
    space: Deployed, run: Any
) -> None:
    code, out, err = run("participants", "add", "--from-file", str(EXAMPLE), *space.args())
    assert code == 0, err
    assert out.splitlines()[-1] == "7 registered, 0 unchanged"
    expected = {2: "provider", 3: "provider", 4: "provider", 5: "provider"}
    expected |= {6: "consumer", 7: "consumer", 8: "service"}
    for index, role in expected.items():
        roles, status, _, identity, uri = space.record(dev_account(index).address)
        assert (roles, status) == (ROLE_BITS[role], 1)
        assert uri.startswith("urn:tally:")
        assert bytes(identity) == bytes(Web3.keccak(text=uri.replace("urn:tally:", "did:example:")))
    height = space.height()
    code, out, err = run("participants", "add", "--from-file", str(EXAMPLE), *space.args())
    assert code == 0, err
    assert out.splitlines()[-1] == "0 registered, 7 unchanged"
    assert space.height() == height  # nothing was sent


def test_add_list_suspend_reinstate_print_roles_by_name(space: Deployed, run: Any) -> None:
    who = dev_account(9).address
    identity = "0x" + "ab" * 32
    code, out, err = run(
        "participants", "add", who.lower(), "--roles", "provider,service",
        "--identity", identity, "--metadata-uri", "https://example.org/p9", *space.args(),
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith(f"registered {who} as provider,service, active (tx 0x")
    assert space.record(who) == (
        5,
        1,
        space.record(who)[2],
        bytes.fromhex("ab" * 32),
        "https://example.org/p9",
    )

    code, out, err = run("participants", "list", "--json", *space.args())
    assert code == 0, err
    listed = {p["address"]: p for p in json.loads(out)}
    assert listed[who]["roles"] == ["provider", "service"] and listed[who]["status"] == "active"
    assert listed[dev_account(0).address]["roles"] == ["operator"]  # the deploying admin
    code, out, _ = run("participants", "list", *space.args())
    line = next(ln for ln in out.splitlines() if ln.startswith(who))  # full address
    assert line.split()[1:4] == ["provider,service", "active", str(space.record(who)[2])]

    code, out, err = run("participants", "suspend", who, *space.args())
    assert code == 0, err
    assert out.startswith(f"suspended {who} as provider,service, suspended")
    code, out, _ = run("participants", "list", who, "--json", *space.args())
    assert json.loads(out)[0]["status"] == "suspended"
    code, out, err = run("participants", "reinstate", who, *space.args())
    assert code == 0, err
    assert out.startswith(f"reinstated {who} as provider,service, active")
    code, out, _ = run("participants", "list", "--role", "service", "--json", *space.args())
    assert [p["address"] for p in json.loads(out)] == [who]


BAD = [
    ("unknown_role", ["add", "{new}", "--roles", "provider,admin"]),
    ("unknown_role", ["add", "{new}", "--roles", "operator"]),
    ("invalid_address", ["add", "0x1234", "--roles", "provider"]),
    ("invalid_address", ["add", "{new_bad_checksum}", "--roles", "provider"]),
    ("invalid_address", ["add", "0x" + "00" * 20, "--roles", "provider"]),
    ("already_registered", ["add", "{member}", "--roles", "consumer"]),
    ("participant_not_found", ["suspend", "{new}"]),
    ("not_suspended", ["reinstate", "{member}"]),
    ("config_invalid", ["add", "{new}"]),
]


@pytest.mark.parametrize(("code", "args"), BAD, ids=[f"{c}-{i}" for i, (c, _) in enumerate(BAD)])
def test_bad_input_is_one_line_and_changes_nothing(
    space: Deployed, run: Any, code: str, args: list[str]
) -> None:
    member, new = dev_account(2).address, dev_account(9).address
    assert run("participants", "add", member, "--roles", "provider", *space.args())[0] == 0
    bad_checksum = new[:-1] + (new[-1].lower() if new[-1].isupper() else new[-1].upper())
    if bad_checksum == new:  # the last digit is a number: flip a letter instead
        i = next(i for i in range(2, 42) if new[i].isalpha())
        bad_checksum = new[:i] + new[i].swapcase() + new[i + 1 :]
    values = {"member": member, "new": new, "new_bad_checksum": bad_checksum}
    height = space.height()
    exit_code, _, err = run("participants", *[a.format(**values) for a in args], *space.args())
    assert exit_code == 1
    (line,) = err.splitlines()
    assert line.startswith(f"error[{code}]: ")
    assert space.height() == height  # nothing was sent


def test_key_without_operator_role_is_refused(anvil_chain: Chain, tmp_path: Path, run: Any) -> None:
    space = _deploy(anvil_chain, tmp_path, admin_index=3)  # account 0 (our key) is no operator
    height = space.height()
    code, _, err = run(
        "participants", "add", dev_account(9).address, "--roles", "consumer", *space.args()
    )
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith("error[role_required]: ") and dev_account(0).address in line
    assert space.height() == height


def test_bad_participants_file_names_the_line_and_sends_nothing(
    space: Deployed, run: Any, tmp_path: Path
) -> None:
    good = dev_account(2).address
    bad = tmp_path / "participants.csv"
    bad.write_text(
        f"# two rows\naddress,roles\n{good},provider\n{dev_account(3).address},insurer\n"
    )
    height = space.height()
    code, _, err = run("participants", "add", "--from-file", str(bad), *space.args())
    assert code == 1
    (line,) = err.splitlines()
    assert line == (
        "error[unknown_role]: participants.csv line 4: unknown role 'insurer'; "
        "participant roles are provider, consumer, service"
    )
    assert space.height() == height
    assert space.record(good)[1] == 0  # the good row was not registered either


def test_participants_file_format() -> None:
    rows = parse_admissions(
        "address,roles,metadata_uri\n"
        f'{dev_account(2).address},"provider,consumer",urn:a\n'
        f"{dev_account(3).address.lower()},service;provider,\n",
        name="p.csv",
    )
    assert [(r.roles, r.metadata_uri, r.identity_hash) for r in rows] == [
        (3, "urn:a", bytes(32)),
        (5, "", bytes(32)),
    ]
    assert rows[1].address == dev_account(3).address  # checksummed
    with pytest.raises(InvalidInput, match=r"p\.csv line 1: the header"):
        parse_admissions("addr,roles\n", name="p.csv")
    with pytest.raises(InvalidInput, match=r"line 3: .* is listed already"):
        parse_admissions(
            f"address,roles\n{dev_account(2).address},provider\n{dev_account(2).address.lower()},consumer\n",
            name="p.csv",
        )
    with pytest.raises(UnknownRole):
        parse_admissions(f"address,roles\n{dev_account(2).address},\n", name="p.csv")
