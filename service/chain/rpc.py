"""First contact with a JSON-RPC endpoint, without web3 (cheap to import).

:func:`probe_chain_id` asks the node for ``eth_chainId`` and turns every way of not
getting an answer (connection refused, unknown host, timeout, an HTTP error, a body
that is not JSON-RPC) into one :class:`~service.errors.RpcUnavailable` whose message
names the URL. Every command that takes ``--rpc`` (or a network with an ``rpc_url``)
connects through it, so an unreachable node is one line, ``error[rpc_unavailable]: …``,
and not a traceback. First contact is retried once after a short pause, quietly: a node
that is not there will not appear during backoff, and a command should say so at once.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from service.errors import ConfigError, RpcUnavailable

log = logging.getLogger(__name__)

PROBE_TRIES = 2
PROBE_PAUSE_S = 0.25
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


def check_rpc_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host; :class:`ConfigError` otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"an RPC URL is http(s)://host[:port][/path], got {url!r}")
    return url


def _reason(err: requests.RequestException, timeout_s: float) -> str:
    if isinstance(err, requests.Timeout):
        return f"no answer within {timeout_s:g}s"
    text = str(err)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("Temporary failure in name resolution", "unknown host"),
        ("No route to host", "no route to host"),
        ("Network is unreachable", "network unreachable"),
    ):
        if needle in text:
            return reason
    return f"{type(err).__name__}"


def unreachable(url: str, reason: str) -> RpcUnavailable:
    """The one-line error for a node at ``url`` that does not answer."""
    hint = ""
    if (urlsplit(url).hostname or "") in _LOCAL_HOSTS:
        hint = " (is the node running? `tally chain up` starts the dev node)"
    return RpcUnavailable(f"cannot reach the JSON-RPC node at {url}: {reason}{hint}", url=url)


def _ask_chain_id(url: str, timeout_s: float) -> int:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    response = requests.post(url, json=body, timeout=timeout_s)
    if not response.ok:
        raise unreachable(url, f"HTTP {response.status_code}")
    try:
        answer = response.json()
        return int(answer["result"], 16)
    except (ValueError, KeyError, TypeError):
        raise unreachable(url, "the answer to eth_chainId is not JSON-RPC") from None


def probe_chain_id(url: str, *, timeout_s: float = 10.0, tries: int = PROBE_TRIES) -> int:
    """The chain id the node at ``url`` reports; :class:`RpcUnavailable` if it cannot be
    asked (after ``tries`` attempts, ``PROBE_PAUSE_S`` apart)."""
    check_rpc_url(url)
    for attempt in range(tries):
        try:
            return _ask_chain_id(url, timeout_s)
        except requests.RequestException as err:
            if attempt == tries - 1:
                raise unreachable(url, _reason(err, timeout_s)) from None
            log.debug("probe %s: %s; trying again", url, _reason(err, timeout_s))
            time.sleep(PROBE_PAUSE_S)
    raise AssertionError("unreachable")
