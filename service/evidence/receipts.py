"""Receipt documents: one JSON per entry with everything an auditor needs.

Top-level keys: ``version``, ``entry_type``, ``entry`` (the typed-data message, EIP-712
field names), ``signatures`` (signer -> 0x signature), ``entry_id``, ``leaf_index``,
``tree_size``, ``root``, ``inclusion_proof`` (0x hashes, RFC 9162 order), ``anchor``
(``chain_id``, ``contract`` = the EvidenceLedger, which is also the EIP-712 verifying
contract, ``checkpoint_seq``, ``tx_hash``, ``block_number``). The canonical bytes and
the leaf are recomputed from these by the auditor, never read from the document.

Optional ``cosignatures`` (when the space has a note key): the C2SP signed note of the
receipt's checkpoint (``tree_size``, the log's root at that size, the space's origin)
followed by the witnesses' cosignature lines stored for it, as text. ``tally audit
receipt --witness VKEY --min-witnesses K`` counts the valid ones
(:mod:`service.witness.cosignatures`).

Versions (T15, :mod:`service.evidence.commitment`): an entry with a legacy leaf gets the
``"version": 1`` document above; an entry with a commitment leaf gets ``"version": 2,
"form": "full"``: the same keys plus ``"salt"`` (0x hex), from which the auditor
rebuilds the commitment leaf. :func:`reduce_receipt` turns a full document into the
``"form": "reduced"`` one that discloses only chosen fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from service.errors import InvalidEntry, InvalidInput, NotAnchored
from service.evidence import commitment
from service.evidence.eip712 import Domain
from service.evidence.entries import SignedEntry
from service.evidence.log import get_entry
from service.evidence.models import AnchorRow, EntryCommitment, LogEntry
from service.evidence.tiles import MerkleLog, SqlTileStorage

if TYPE_CHECKING:
    from service.witness.note import CosignatureV1Verifier, NoteSigner

RECEIPT_VERSION = 1  # a legacy leaf's receipt
RECEIPT_VERSION_COMMITMENT = 2  # a commitment leaf's: "form" "full" or "reduced"
PROOF_KEYS = ("leaf_index", "tree_size", "root", "inclusion_proof", "anchor")


def build_receipt(
    *,
    session: Session,
    eid: str,
    note_signer: NoteSigner | None = None,
    witnesses: tuple[CosignatureV1Verifier, ...] = (),
    entry: tuple[LogEntry, SignedEntry] | None = None,
) -> dict[str, Any]:
    """The receipt of entry ``eid`` against the first checkpoint that covers it; with a
    ``note_signer``, its ``cosignatures`` note (the configured ``witnesses``' lines).
    ``entry``: its row and decoded entry when the caller has read them already."""
    row, signed = get_entry(session=session, eid=eid) if entry is None else entry
    # the first checkpoint that covers the entry, and the entry's salt, in one statement
    salt_of = (
        select(EntryCommitment.salt)
        .where(EntryCommitment.leaf_index == row.leaf_index)
        .scalar_subquery()
    )
    found = session.exec(
        select(AnchorRow, salt_of)
        .where(AnchorRow.tree_size > row.leaf_index)
        .order_by(col(AnchorRow.seq).asc())
        .limit(1)
    ).first()
    if found is None:
        raise NotAnchored(f"entry {eid} (leaf {row.leaf_index}) is not anchored yet")
    anchor, stored_salt = found
    salt = None if stored_salt is None else bytes(stored_salt)
    # the proof and the tree's own root at the anchored size (for the note), in two reads
    proof, tree_root = MerkleLog(SqlTileStorage(session)).proof_and_root(
        index=row.leaf_index, size=anchor.tree_size
    )
    body = signed.to_json()
    doc: dict[str, Any] = {
        "version": RECEIPT_VERSION if salt is None else RECEIPT_VERSION_COMMITMENT,
        **({} if salt is None else {"form": "full"}),
        "entry_type": body["entry_type"],
        "entry": body["entry"],
        "signatures": body["signatures"],
        "entry_id": row.entry_id,
        "leaf_index": row.leaf_index,
        "tree_size": anchor.tree_size,
        "root": anchor.root,
        "inclusion_proof": ["0x" + h.hex() for h in proof],
        "anchor": {
            "chain_id": anchor.chain_id,
            "contract": anchor.contract,
            "checkpoint_seq": anchor.seq,
            "tx_hash": anchor.tx_hash,
            "block_number": anchor.block_number,
        },
    }
    if salt is not None:
        doc["salt"] = "0x" + salt.hex()
    if note_signer is not None:
        from service.witness.cosignatures import served_checkpoint

        served = served_checkpoint(
            session=session, signer=note_signer, witnesses=witnesses, row=anchor, root=tree_root
        )
        doc["cosignatures"] = served.note.decode("utf-8")
    return doc


def _hex_bytes(value: object, what: str, size: int) -> bytes:
    text = value if isinstance(value, str) else ""
    try:
        raw = bytes.fromhex(text[2:]) if text.startswith("0x") else b""
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise InvalidInput(f"{what} must be 0x followed by {2 * size} hex digits")
    return raw


def reduce_receipt(
    doc: Mapping[str, Any], fields: Iterable[str], *, signed: bool = True
) -> dict[str, Any]:
    """The reduced form of the full version-2 receipt ``doc`` that discloses ``fields``.

    Signed (default): the document keeps the struct hash and the signatures, and the
    fields that name the required signers (:func:`commitment.signer_fields`) must be
    among ``fields``. ``signed=False``: only the signers digest, no signer named. What
    each form proves: :mod:`service.evidence.commitment`. The proof keys (and
    ``cosignatures``) are copied unchanged. Raises :class:`InvalidInput` for a legacy
    (version 1) or already reduced document, an unknown field name, or a signer field
    left out of a signed form. Nothing is verified here: audit the result.
    """
    if not isinstance(doc, Mapping):
        raise InvalidInput("a receipt is a JSON object")
    version, form = doc.get("version"), doc.get("form")
    if version == RECEIPT_VERSION:
        raise InvalidInput(
            "a version-1 receipt (a legacy leaf, the canonical bytes) cannot be reduced: "
            "its leaf is the whole entry"
        )
    if version != RECEIPT_VERSION_COMMITMENT or form != "full":
        raise InvalidInput(
            f"only a full version-2 receipt can be reduced (got version {version!r}, form {form!r})"
        )
    for key in ("entry_type", "entry", "signatures", "salt", *PROOF_KEYS):
        if key not in doc:
            raise InvalidInput(f"the receipt has no {key!r}")
    anchor = doc["anchor"]
    if not isinstance(anchor, Mapping):
        raise InvalidInput("anchor must be an object")
    try:
        domain = Domain(chain_id=anchor.get("chain_id"), verifying_contract=anchor.get("contract"))  # type: ignore[arg-type]
        signed_entry = SignedEntry.from_json(doc, domain=domain)
    except (InvalidEntry, InvalidInput) as err:
        raise InvalidInput(f"the receipt's entry: {err.message}") from None
    except ValueError as err:
        raise InvalidInput(f"anchor: {err}") from None
    salt = _hex_bytes(doc["salt"], "salt", commitment.SALT_SIZE)
    type_name = signed_entry.entry_type_name
    names = commitment.field_names(type(signed_entry.entry))
    wanted = list(fields)
    unknown = [f for f in wanted if f not in names]
    if unknown:
        raise InvalidInput(
            f"{type_name} has no field {', '.join(map(repr, unknown))}; its fields are "
            f"{', '.join(names)}"
        )
    chosen = set(wanted)
    hidden_signers = [f for f in commitment.signer_fields(type_name) if f not in chosen]
    if signed and hidden_signers:
        raise InvalidInput(
            f"a signed reduced {type_name} must disclose {', '.join(hidden_signers)} (the "
            "fields naming its signers); add them to the fields or drop the signatures "
            "(unsigned form)"
        )
    every = commitment.disclosures(signed_entry, salt)
    entry = signed_entry.entry
    out: dict[str, Any] = {
        "version": RECEIPT_VERSION_COMMITMENT,
        "form": "reduced",
        "entry_type": type_name,
        "disclosures": [d for name, d in zip(names, every, strict=True) if name in chosen],
        "field_digests": ["0x" + commitment.disclosure_digest(d).hex() for d in every],
        "commitment_salt": "0x" + commitment.commitment_salt(salt).hex(),
    }
    if signed:
        out["signed"] = {
            "struct_hash": "0x" + entry.struct_hash().hex(),
            "signatures": {s: "0x" + sig.hex() for s, sig in signed_entry.signatures.items()},
        }
    else:
        digest = commitment.signers_digest(
            domain.separator, entry.struct_hash(), commitment.signature_records(signed_entry)
        )
        out["signers_digest"] = "0x" + digest.hex()
    for key in PROOF_KEYS:
        out[key] = doc[key]
    if "cosignatures" in doc:
        out["cosignatures"] = doc["cosignatures"]
    return out
