"""Signing keys: the dev mnemonic on dev chains, an env var or a keystore elsewhere.

Keys never reach a log line: only addresses do.
"""

from __future__ import annotations

import json
import os
from functools import cache

from eth_account import Account
from eth_account.signers.local import LocalAccount

from service.chain.config import NetworkConfig
from service.errors import ConfigError

# The well-known public test mnemonic of anvil and hardhat. Dev chains only.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_HD_PATH = "m/44'/60'/0'/0"

Account.enable_unaudited_hdwallet_features()


@cache
def dev_account(index: int) -> LocalAccount:
    acct: LocalAccount = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"{DEV_HD_PATH}/{index}")
    return acct


def dev_accounts(count: int) -> list[LocalAccount]:
    return [dev_account(i) for i in range(count)]


def operator_account(network: NetworkConfig) -> LocalAccount:
    """The operator's key as the network's config says (dev account 0 on dev chains)."""
    keys = network.keys
    if keys.source == "dev-mnemonic":
        if not network.is_dev:
            raise ConfigError(f"network {network.name}: the dev mnemonic is refused here")
        return dev_account(0)
    if keys.source == "env":
        value = os.environ.get(keys.env_var)
        if not value:
            raise ConfigError(f"network {network.name}: set {keys.env_var} to the operator key")
        try:
            acct: LocalAccount = Account.from_key(value.strip())
        except (ValueError, TypeError):
            raise ConfigError(f"{keys.env_var} is not a valid private key") from None
        return acct
    assert keys.keystore_path is not None  # checked by the config model
    password = os.environ.get(keys.password_env)
    if password is None:
        raise ConfigError(f"network {network.name}: set {keys.password_env} for the keystore")
    try:
        blob = json.loads(keys.keystore_path.read_text(encoding="utf-8"))
        key = Account.decrypt(blob, password)
    except FileNotFoundError:
        raise ConfigError(f"keystore {keys.keystore_path} not found") from None
    except (ValueError, json.JSONDecodeError):
        raise ConfigError(
            f"keystore {keys.keystore_path}: cannot decrypt (wrong password?)"
        ) from None
    acct = Account.from_key(key)
    return acct
