"""Signing keys: the dev mnemonic on dev chains, an env var or a keystore elsewhere.

Two keys per operator, from the same source (``keys`` in the network's chain config):
the secp256k1 chain key (:func:`operator_account`) and the Ed25519 note key that signs
the log's C2SP checkpoints (:func:`note_signer`). Keys never reach a log line: only
addresses and public note keys (vkeys) do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from eth_account import Account
from eth_account.signers.local import LocalAccount

from service.chain.config import KeySource, NetworkConfig
from service.errors import ConfigError
from service.witness.note import NoteKeyInvalid, NoteSigner

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


def env_account(var: str, *, missing: str | None = None) -> LocalAccount:
    """The private key in environment variable ``var`` (``--key-env VAR``); ``missing``:
    the error when it is unset or empty."""
    value = os.environ.get(var)
    if not value:
        raise ConfigError(missing or f"environment variable {var} holds no private key")
    try:
        acct: LocalAccount = Account.from_key(value.strip())
    except (ValueError, TypeError):
        raise ConfigError(f"{var} is not a valid private key") from None
    return acct


def operator_account(network: NetworkConfig) -> LocalAccount:
    """The operator's key as the network's config says (dev account 0 on dev chains)."""
    keys = network.keys
    if keys.source == "dev-mnemonic":
        if not network.is_dev:
            raise ConfigError(f"network {network.name}: the dev mnemonic is refused here")
        return dev_account(0)
    if keys.source == "env":
        missing = f"network {network.name}: set {keys.env_var} to the operator key"
        return env_account(keys.env_var, missing=missing)
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
    acct: LocalAccount = Account.from_key(key)
    return acct


# --- the note key (C2SP signed notes) -----------------------------------------------------

# Dev chains: seed = HMAC-SHA256(key = dev operator's 32-byte secp256k1 private key,
# msg = DEV_NOTE_KEY_LABEL || origin). Public (the dev mnemonic is), deterministic, and
# distinct per deployment because the origin names the chain and the ledger.
DEV_NOTE_KEY_LABEL = b"tally note key v1\n"
NOTE_KEYSTORE_FORMAT = "tally-note-keystore/1"
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_SCRYPT_MAX_N = 2**20


class NoteKeyMissing(ConfigError):
    """No note key is configured (the log's checkpoints cannot be served as signed notes)."""

    code = "note_key_missing"


def dev_note_seed(origin: str) -> bytes:
    """The dev chains' note key seed for ``origin`` (see :data:`DEV_NOTE_KEY_LABEL`)."""
    return hmac.new(
        bytes(dev_account(0).key), DEV_NOTE_KEY_LABEL + origin.encode("utf-8"), hashlib.sha256
    ).digest()


def note_keystore_path(keys: KeySource) -> Path | None:
    """``note_keystore_path``, else ``<keystore stem>.note.json`` beside the chain keystore."""
    if keys.note_keystore_path is not None:
        return keys.note_keystore_path
    if keys.keystore_path is None:
        return None
    return keys.keystore_path.with_name(keys.keystore_path.stem + ".note.json")


def note_signer(network: NetworkConfig, origin: str) -> NoteSigner:
    """The operator's Ed25519 note key, named ``origin``, from the network's key source.

    :class:`NoteKeyMissing` when the source has none (nothing set, no file); a
    :class:`~service.errors.ConfigError` naming the setting (never the key) when it is
    malformed, locked with another password, or a key for another origin.
    """
    keys = network.keys
    if keys.source == "dev-mnemonic":
        if not network.is_dev:
            raise ConfigError(f"network {network.name}: the dev mnemonic is refused here")
        return NoteSigner(origin, dev_note_seed(origin))
    if keys.source == "env":
        return _note_signer_from_env(keys.note_env_var, origin)
    path = note_keystore_path(keys)
    assert path is not None  # keystore_path is required by the config model
    password = os.environ.get(keys.password_env)
    if not path.is_file():
        raise NoteKeyMissing(f"note keystore {path} not found")
    if password is None:
        raise ConfigError(f"network {network.name}: set {keys.password_env} for the keystore")
    return NoteSigner(origin, read_note_keystore(path, password))


def _note_signer_from_env(var: str, origin: str) -> NoteSigner:
    value = os.environ.get(var)
    if not value:
        raise NoteKeyMissing(f"set {var} to the note private key (PRIVATE+KEY+{origin}+...)")
    try:
        signer = NoteSigner.from_skey(value)
    except NoteKeyInvalid:
        raise ConfigError(f"{var} is not a C2SP Ed25519 note private key") from None
    if signer.name != origin:
        raise ConfigError(
            f"{var} is a note key named {signer.name!r}; this space's origin is {origin!r}"
        )
    return signer


def new_note_skey(origin: str) -> str:
    """A fresh note private key text for ``TALLY_NOTE_KEY`` (a secret: store it as one)."""
    return NoteSigner.generate(origin).skey()


def write_new_secret(path: Path, text: str) -> None:
    """Write ``text`` to a new file readable by its owner only (mode 0600, created
    exclusively: an existing file, a key perhaps, is never overwritten)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists: not overwriting a key") from None
    except OSError as err:
        raise ConfigError(f"cannot create {path}: {err.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _scrypt(salt: bytes, n: int, r: int, p: int) -> Scrypt:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p)


def write_note_keystore(path: Path, password: str, seed: bytes | None = None) -> bytes:
    """Write an encrypted note keystore (scrypt + AES-256-GCM); returns the public key.

    The file holds the 32-byte Ed25519 seed, never the key name: the origin names the
    key when it is loaded, so the file follows the key, not the deployment.
    """
    seed = os.urandom(32) if seed is None else seed
    public = NoteSigner("x", seed).public_key
    salt, nonce = os.urandom(16), os.urandom(12)
    kek = _scrypt(salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P).derive(password.encode("utf-8"))
    aad = NOTE_KEYSTORE_FORMAT.encode() + public
    doc = {
        "format": NOTE_KEYSTORE_FORMAT,
        "kdf": {"name": "scrypt", "n": _SCRYPT_N, "r": _SCRYPT_R, "p": _SCRYPT_P},
        "salt": base64.b64encode(salt).decode(),
        "cipher": "aes-256-gcm",
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(AESGCM(kek).encrypt(nonce, seed, aad)).decode(),
        "public_key": base64.b64encode(public).decode(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
    return public


def read_note_keystore(path: Path, password: str) -> bytes:
    """The Ed25519 seed in a note keystore; :class:`ConfigError` naming the file if not."""
    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != NOTE_KEYSTORE_FORMAT or doc.get("cipher") != "aes-256-gcm":
            raise ValueError("format")
        kdf = doc["kdf"]
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        if kdf.get("name") != "scrypt" or not 2 <= n <= _SCRYPT_MAX_N or not 0 < r * p <= 64:
            raise ValueError("kdf")
        salt, nonce, blob, public = (
            base64.b64decode(doc[k], validate=True)
            for k in ("salt", "nonce", "ciphertext", "public_key")
        )
    except FileNotFoundError:
        raise NoteKeyMissing(f"note keystore {path} not found") from None
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise ConfigError(f"note keystore {path}: not a {NOTE_KEYSTORE_FORMAT} file") from None
    kek = _scrypt(salt, n, r, p).derive(password.encode("utf-8"))
    try:
        seed = AESGCM(kek).decrypt(nonce, blob, NOTE_KEYSTORE_FORMAT.encode() + public)
    except (InvalidTag, ValueError):
        raise ConfigError(f"note keystore {path}: cannot decrypt (wrong password?)") from None
    if len(seed) != 32 or NoteSigner("x", seed).public_key != public:
        raise ConfigError(f"note keystore {path}: the key does not match its public key")
    return seed
