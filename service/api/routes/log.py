"""``/v1/log``: checkpoints, entries (the public log), inclusion and consistency proofs;
the latest anchored checkpoint as a C2SP signed note, the note key, and the witnesses'
cosignatures (:mod:`service.witness.cosignatures`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from service.api.deps import CtxDep, PageDep, SessionDep, SettingsDep
from service.api.queries import consistency, inclusion, list_checkpoints, log_page
from service.api.schemas import (
    MAX_INDEX,
    CheckpointsOut,
    ConsistencyOut,
    InclusionOut,
    LogPageOut,
)
from service.witness.cosignatures import (
    MAX_LINE_CHARS,
    MAX_VKEY_CHARS,
    NoteKeyUnavailable,
    add_cosignature,
    checkpoint_note,
)
from service.witness.note import MAX_TREE_SIZE

router = APIRouter(prefix="/v1/log", tags=["log"])

Index = Annotated[int, Query(ge=0, le=MAX_INDEX)]


@router.get("/checkpoints", response_model=CheckpointsOut)
def checkpoints(session: SessionDep, page: PageDep) -> dict[str, Any]:
    """Anchored checkpoints, oldest first, and the log's current size and root."""
    return list_checkpoints(session=session, offset=page.offset, limit=page.limit)


@router.get("/entries", response_model=LogPageOut)
def entries(
    session: SessionDep,
    settings: SettingsDep,
    start: Index = 0,
    end: Annotated[int | None, Query(ge=0, le=MAX_INDEX)] = None,
) -> dict[str, Any]:
    """Leaves ``start <= leaf < end``: each leaf's data (a commitment to its entry; for a
    leaf appended before T15, its canonical bytes) and hash, no entry (at most
    TALLY_PAGE_MAX per page; follow ``next``)."""
    return log_page(session=session, start=start, end=end, page_max=settings.page_max)


@router.get("/proof/inclusion", response_model=InclusionOut)
def inclusion_proof(session: SessionDep, leaf: Index, size: Index) -> dict[str, Any]:
    """RFC 9162 inclusion proof of leaf ``leaf`` in the tree of ``size`` leaves."""
    return inclusion(session=session, leaf=leaf, size=size)


@router.get("/proof/consistency", response_model=ConsistencyOut, response_model_by_alias=True)
def consistency_proof(
    session: SessionDep,
    from_: Annotated[int, Query(alias="from", ge=0, le=MAX_INDEX)],
    to: Index,
) -> dict[str, Any]:
    """RFC 9162 consistency proof from tree size ``from`` to ``to``."""
    return consistency(session=session, old=from_, new=to)


# --- witnessed checkpoints (C2SP signed notes) -------------------------------------------

NOTE_MEDIA_TYPE = "text/plain; charset=utf-8"


class NoteKeyOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    origin: str = Field(description="The checkpoint origin: <space>/tally/<chain id>/<ledger>.")
    vkey: str = Field(description="The log's note verifier key (C2SP vkey, Ed25519 alg 0x01).")
    key_name: str = Field(description="Equal to the origin.")
    key_id: str = Field(description="8 hex digits.")
    witnesses: list[str] = Field(
        description="The cosignature/v1 vkeys this space accepts cosignatures from "
        "(TALLY_WITNESSES). Informational: an auditor pins its own."
    )


class CosignatureIn(BaseModel):
    """A witness's tlog-cosignature/v1 over this space's checkpoint note of ``size``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    witness_vkey: str = Field(
        min_length=1,
        max_length=MAX_VKEY_CHARS,
        validation_alias=AliasChoices("witness_vkey", "vkey"),
        description="The witness's cosignature/v1 vkey (name+keyid+base64(0x04||key)); "
        "`vkey` is accepted as an alias.",
    )
    cosignature: str = Field(
        min_length=1,
        max_length=MAX_LINE_CHARS,
        description="The signature line: em dash (U+2014), space, witness name, space, "
        "base64(key id || u64 timestamp || Ed25519 signature); a final newline is optional.",
    )
    size: int = Field(ge=0, le=MAX_TREE_SIZE, description="The anchored tree size cosigned.")


class CosignatureOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str = Field(description="stored | replaced (newer timestamp) | unchanged (replay)")
    origin: str
    tree_size: int
    root: str = Field(description="0x hex root of this space's tree at tree_size.")
    witness: str
    key_id: str
    timestamp: int


@router.get(
    "/checkpoint",
    response_class=Response,
    responses={
        200: {
            "content": {NOTE_MEDIA_TYPE: {}},
            "description": "The tlog-checkpoint signed note (origin, size, base64 root), "
            "signed by the log's note key, then the stored witness cosignature lines.",
        },
        404: {"description": "`log_not_anchored`: no checkpoint is anchored yet."},
        503: {"description": "`note_key_unavailable`: the space has no note key."},
    },
)
def checkpoint_note_route(ctx: CtxDep, session: SessionDep) -> Response:
    """The latest anchored checkpoint as a C2SP signed note with its cosignatures (the
    size of the last on-chain checkpoint, the root of the log's own tree at that size)."""
    served = checkpoint_note(session=session, signer=ctx.note_signer, witnesses=ctx.witnesses)
    return Response(content=served.note, media_type=NOTE_MEDIA_TYPE)


@router.get("/key", response_model=NoteKeyOut)
def note_key(ctx: CtxDep) -> dict[str, Any]:
    """The log's public note key (pin it in a witness) and its origin."""
    signer = ctx.note_signer
    if signer is None:
        raise NoteKeyUnavailable("this space has no note key configured")
    return {
        "origin": signer.name,
        "vkey": signer.vkey(),
        "key_name": signer.name,
        "key_id": f"{signer.key_id:08x}",
        "witnesses": [w.vkey() for w in ctx.witnesses],
    }


@router.post(
    "/cosignatures",
    response_model=CosignatureOut,
    responses={
        400: {"description": "`note_key_invalid`, `note_invalid`: a malformed vkey or line."},
        403: {"description": "`witness_unknown`: the key is not in TALLY_WITNESSES."},
        404: {"description": "`checkpoint_not_found`: `size` is not an anchored size."},
        409: {"description": "`cosignature_stale`: a newer one of this witness is stored."},
        422: {
            "description": "`cosignature_invalid`: does not verify over this space's "
            "note body of that size (forged, another root or origin, future timestamp)."
        },
    },
)
def post_cosignature(body: CosignatureIn, ctx: CtxDep, session: SessionDep) -> dict[str, Any]:
    """A configured witness posts its cosignature of an anchored checkpoint; it is kept
    (one per checkpoint and witness key, the newest timestamp) and served with the note.
    No credential needed: the cosignature authenticates itself."""
    return add_cosignature(
        session=session,
        signer=ctx.note_signer,
        witnesses=ctx.witnesses,
        witness_vkey=body.witness_vkey,
        cosignature=body.cosignature,
        size=body.size,
    )
