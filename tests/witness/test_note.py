"""service.witness.note against published vectors and an independent Ed25519 (PyNaCl).

Vectors are data copied verbatim from:

- C2SP/C2SP at commit 5ba5ee8: ``signed-note.md`` (the example vkey and note),
  ``tlog-checkpoint.md`` (the example checkpoint) and ``tlog-cosignature.md`` (the
  example cosigned checkpoint and the cosignature/v1 signed message);
- golang/mod at commit fe2ec04: ``sumdb/note/note_test.go`` (the PeterNeumann and
  EnochRoot keys, notes and expected signatures of Go's reference implementation).
"""

from __future__ import annotations

import base64
import struct

import nacl.exceptions
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.witness.note import (
    MAX_SIGNATURES,
    Checkpoint,
    CheckpointMalformed,
    CosignatureInvalid,
    CosignatureV1Signer,
    CosignatureV1Verifier,
    NoteError,
    NoteKeyInvalid,
    NoteSignatureInvalid,
    NoteSigner,
    NoteTooLarge,
    NoteUnknownSignature,
    NoteUnverified,
    NoteVerifier,
    cosign,
    cosignature_message,
    open_checkpoint,
    open_note,
    parse_note,
    parse_signature_line,
    sign_note,
    verify_cosignature,
)

# --- C2SP signed-note.md, "Verifier keys / Example" -------------------------------------
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n"
    "\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXm"
    "RKuwHjG1Yu72IneyaQM=\n"
).encode()

# --- C2SP tlog-checkpoint.md (intro) and tlog-cosignature.md (intro, signed message) -----
C2SP_CHECKPOINT_BODY = (
    b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
C2SP_LOG_SIG = (
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
    "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)
C2SP_COSIG = (
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2"
    "oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
C2SP_COSIGNED_MESSAGE = (
    b"cosignature/v1\n"
    b"time 1679315147\n"
    b"example.com/behind-the-sofa\n"
    b"20852163\n"
    b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)

# --- golang/mod sumdb/note/note_test.go ---------------------------------------------------
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZ"
    "b6KE6RyyBwJnAM=\n"
).encode()
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33"
    "WWd1RvMc+QQ=\n"
).encode()


def _nacl_verify(verifier: NoteVerifier, message: bytes, signature: bytes) -> None:
    """Raises unless libsodium accepts ``signature`` (64 raw bytes) over ``message``."""
    nacl.signing.VerifyKey(verifier.public_key).verify(message, signature)


def _seed(skey: str) -> bytes:
    return base64.b64decode(skey.split("+", 4)[4])[1:]


# --- vectors ------------------------------------------------------------------------------


def test_c2sp_example_note_verifies_and_nacl_agrees() -> None:
    verifier = NoteVerifier.from_vkey(C2SP_VKEY)
    assert verifier.name == "example.com/foo"
    assert verifier.key_id == 0x530D903A
    assert verifier.vkey() == C2SP_VKEY
    body, verified, unknown = open_note(C2SP_NOTE, [verifier])
    assert body == b"This is an example message.\n"
    assert unknown == []
    assert [(s.name, s.key_id) for s in verified] == [("example.com/foo", 0x530D903A)]
    _nacl_verify(verifier, body, verified[0].signature)


def test_c2sp_example_note_tampered_text_is_rejected() -> None:
    verifier = NoteVerifier.from_vkey(C2SP_VKEY)
    with pytest.raises(NoteSignatureInvalid):
        open_note(C2SP_NOTE.replace(b"example", b"Example", 1), [verifier])
    with pytest.raises(nacl.exceptions.BadSignatureError):
        signature = parse_note(C2SP_NOTE)[1][0].signature
        _nacl_verify(verifier, b"This is an Example message.\n", signature)


def test_c2sp_checkpoint_example_parses() -> None:
    checkpoint = Checkpoint.parse(C2SP_CHECKPOINT_BODY)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()
    assert checkpoint.body() == C2SP_CHECKPOINT_BODY


def test_c2sp_cosigned_checkpoint_example_splits_into_two_signatures() -> None:
    note = C2SP_CHECKPOINT_BODY + b"\n" + C2SP_LOG_SIG.encode() + C2SP_COSIG.encode()
    body, sigs = parse_note(note)
    assert body == C2SP_CHECKPOINT_BODY
    assert [s.name for s in sigs] == ["example.com/behind-the-sofa", "witness.example.com/w1"]
    cosig = sigs[1]
    assert len(cosig.signature) == 8 + 64
    # The example's timestamp is the one in the spec's example signed message.
    assert struct.unpack(">Q", cosig.signature[:8])[0] == 1679315147
    assert cosig.line() == C2SP_COSIG


def test_cosignature_message_matches_c2sp_example() -> None:
    assert cosignature_message(C2SP_CHECKPOINT_BODY, 1679315147) == C2SP_COSIGNED_MESSAGE


def test_go_skey_derives_go_vkey() -> None:
    signer = NoteSigner.from_skey(PETER_SKEY)
    assert signer.vkey() == PETER_VKEY
    assert signer.skey() == PETER_SKEY
    assert signer.public_key == bytes(nacl.signing.SigningKey(_seed(PETER_SKEY)).verify_key)


def test_sign_note_matches_go_reference_output() -> None:
    signer = NoteSigner.from_skey(PETER_SKEY)
    assert sign_note(GO_TEXT, [signer]) == GO_TEXT + b"\n" + PETER_SIG


def test_open_go_note_one_known_one_unknown() -> None:
    peter = NoteVerifier.from_vkey(PETER_VKEY)
    enoch = NoteVerifier.from_vkey(ENOCH_VKEY)
    note = GO_TEXT + b"\n" + PETER_SIG + ENOCH_SIG
    body, verified, unknown = open_note(note, [peter])
    assert body == GO_TEXT
    assert [s.name for s in verified] == ["PeterNeumann"]
    assert [(s.name, s.key_id) for s in unknown] == [("EnochRoot", 0xAF0CFE78)]
    body, verified, unknown = open_note(note, [peter, enoch])
    assert [s.name for s in verified] == ["PeterNeumann", "EnochRoot"]
    assert unknown == []
    for sig, verifier in zip(verified, [peter, enoch], strict=True):
        _nacl_verify(verifier, body, sig.signature)


def test_open_go_note_duplicates_count_once() -> None:
    peter = NoteVerifier.from_vkey(PETER_VKEY)
    altered = ENOCH_SIG[:60] + b"ABCD" + ENOCH_SIG[60:]
    note = GO_TEXT + b"\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + altered
    _, verified, unknown = open_note(note, [peter])
    assert len(verified) == 1
    assert [s.line().encode() for s in unknown] == [ENOCH_SIG, altered]


def test_open_with_no_known_key_is_unverified() -> None:
    with pytest.raises(NoteUnverified):
        open_note(GO_TEXT + b"\n" + PETER_SIG + ENOCH_SIG, [])


def test_open_known_only_rejects_foreign_signature() -> None:
    peter = NoteVerifier.from_vkey(PETER_VKEY)
    with pytest.raises(NoteUnknownSignature):
        open_note(GO_TEXT + b"\n" + PETER_SIG + ENOCH_SIG, [peter], known_only=True)
    body, _, _ = open_note(GO_TEXT + b"\n" + PETER_SIG, [peter], known_only=True)
    assert body == GO_TEXT


def test_vkey_manglings_are_rejected() -> None:
    """Go's TestNewVerifier: every proper substring and every byte+1 of the vkey fails."""
    raw = PETER_VKEY.encode()
    for i in range(len(raw) + 1):
        for j in range(i + 1, len(raw) + 1):
            if (i, j) == (0, len(raw)):
                continue
            with pytest.raises(NoteError):
                NoteVerifier.from_vkey(raw[i:j].decode())
    for i in range(len(raw)):
        mangled = bytearray(raw)
        mangled[i] += 1
        with pytest.raises(NoteError):
            NoteVerifier.from_vkey(mangled.decode())
    # Go's two extra cases: a 39-byte key and an unknown algorithm, ids adjusted.
    with pytest.raises(NoteKeyInvalid):
        NoteVerifier.from_vkey(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        )
    with pytest.raises(NoteKeyInvalid):
        NoteVerifier.from_vkey("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_skey_manglings_are_rejected() -> None:
    raw = PETER_SKEY.encode()
    for i in range(len(raw)):
        mangled = bytearray(raw)
        mangled[i] += 1
        with pytest.raises(NoteError):
            NoteSigner.from_skey(mangled.decode())
    for j in range(1, len(raw)):
        with pytest.raises(NoteError):
            NoteSigner.from_skey(raw[:j].decode())


# --- cosignatures -----------------------------------------------------------------------


def _witness() -> CosignatureV1Signer:
    return CosignatureV1Signer("witness.example/w1", bytes(range(32)))


def test_cosign_verifies_with_nacl_over_the_cosignature_message() -> None:
    witness = _witness()
    line = cosign(C2SP_CHECKPOINT_BODY, witness, 1679315147)
    assert verify_cosignature(line, C2SP_CHECKPOINT_BODY, witness.verifier()) == 1679315147
    sig = parse_signature_line(line)
    assert sig.key_id == witness.key_id
    assert sig.signature[:8] == struct.pack(">Q", 1679315147)
    _nacl_verify(witness.verifier(), C2SP_COSIGNED_MESSAGE, sig.signature[8:])


def test_cosignature_key_id_uses_alg_04() -> None:
    """The same key and name give different ids as a note key and as a cosigner."""
    seed = bytes(range(32))
    assert CosignatureV1Signer("w", seed).key_id != NoteSigner("w", seed).key_id
    vkey = CosignatureV1Signer("w", seed).vkey()
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == 0x04
    assert isinstance(NoteVerifier.from_vkey(vkey), CosignatureV1Verifier)
    with pytest.raises(NoteKeyInvalid):
        CosignatureV1Verifier.from_vkey(NoteSigner("w", seed).vkey())


def test_cosigned_checkpoint_opens_with_timestamps() -> None:
    log = NoteSigner("example.com/behind-the-sofa", bytes([7]) * 32)
    witness = _witness()
    note = sign_note(C2SP_CHECKPOINT_BODY, log) + cosign(
        C2SP_CHECKPOINT_BODY, witness, 1700000000
    ).encode("utf-8")
    checkpoint, cosigs = open_checkpoint(note, log.verifier(), [witness.verifier()])
    assert checkpoint.size == 20852163
    assert [(s.name, s.timestamp) for s in cosigs] == [("witness.example/w1", 1700000000)]


def test_forged_cosignature_is_rejected() -> None:
    witness = _witness()
    line = cosign(C2SP_CHECKPOINT_BODY, witness, 1679315147)
    sig = parse_signature_line(line)
    forged = bytearray(sig.signature)
    forged[20] ^= 1
    bad = type(sig)(sig.name, sig.key_id, bytes(forged)).line()
    with pytest.raises(CosignatureInvalid):
        verify_cosignature(bad, C2SP_CHECKPOINT_BODY, witness.verifier())


def test_cosignature_with_altered_timestamp_is_rejected() -> None:
    witness = _witness()
    sig = parse_signature_line(cosign(C2SP_CHECKPOINT_BODY, witness, 1679315147))
    moved = struct.pack(">Q", 1679315148) + sig.signature[8:]
    with pytest.raises(CosignatureInvalid):
        verify_cosignature(
            type(sig)(sig.name, sig.key_id, moved).line(), C2SP_CHECKPOINT_BODY, witness.verifier()
        )


def test_cosignature_over_another_checkpoint_is_rejected() -> None:
    witness = _witness()
    line = cosign(C2SP_CHECKPOINT_BODY, witness, 1679315147)
    other = Checkpoint("example.com/behind-the-sofa", 20852164, bytes(32)).body()
    with pytest.raises(CosignatureInvalid):
        verify_cosignature(line, other, witness.verifier())


def test_cosignature_by_another_witness_is_rejected() -> None:
    line = cosign(C2SP_CHECKPOINT_BODY, _witness(), 1679315147)
    other = CosignatureV1Signer("witness.example/w1", bytes([9]) * 32)
    with pytest.raises(CosignatureInvalid, match="another key"):
        verify_cosignature(line, C2SP_CHECKPOINT_BODY, other.verifier())


def test_cosignature_timestamp_in_future_is_rejected() -> None:
    witness = _witness()
    line = cosign(C2SP_CHECKPOINT_BODY, witness, 2_000_000_000)
    with pytest.raises(CosignatureInvalid, match="future"):
        verify_cosignature(line, C2SP_CHECKPOINT_BODY, witness.verifier(), not_after=1_999_999_999)


def test_cosignature_timestamp_over_2_63_is_rejected() -> None:
    witness = _witness()
    with pytest.raises(CosignatureInvalid):
        cosign(C2SP_CHECKPOINT_BODY, witness, 2**63)
    sig = parse_signature_line(cosign(C2SP_CHECKPOINT_BODY, witness, 1))
    huge = struct.pack(">Q", 2**63) + sig.signature[8:]
    with pytest.raises(CosignatureInvalid):
        verify_cosignature(
            type(sig)(sig.name, sig.key_id, huge).line(), C2SP_CHECKPOINT_BODY, witness.verifier()
        )


def test_ordinary_signer_cannot_cosign() -> None:
    with pytest.raises(NoteError):
        cosign(C2SP_CHECKPOINT_BODY, NoteSigner("w", bytes(32)), 1)  # type: ignore[arg-type]
    with pytest.raises(NoteError):
        sign_note(C2SP_CHECKPOINT_BODY, [_witness()])


# --- malformed notes (attacks on the parser) ----------------------------------------------


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,  # no signatures
        GO_TEXT + b"\n",  # blank line, no signature lines
        GO_TEXT + b"\n" + PETER_SIG[:-1],  # last line unterminated
        b"\x01" + GO_TEXT + b"\n" + PETER_SIG,  # control character
        b"\xff" + GO_TEXT + b"\n" + PETER_SIG,  # not UTF-8
        GO_TEXT.replace(b"\n", b"\r\n") + b"\n" + PETER_SIG,  # CR
        GO_TEXT + b"\n" + PETER_SIG.replace(b"PeterNeumann", b"Bad Name"),  # space in name
        GO_TEXT + b"\n" + PETER_SIG.replace(b"PeterNeumann", b"Peter+Neumann"),  # plus in name
        GO_TEXT + b"\n" + PETER_SIG + b"Unexpected line.\n",  # not a signature line
        GO_TEXT + b"\n" + PETER_SIG.replace("— ".encode(), b"- "),  # hyphen, not em dash
        GO_TEXT + b"\n" + "— PeterNeumann \n".encode(),  # empty signature
        GO_TEXT + b"\n" + "— PeterNeumann x08g\n".encode(),  # 3 bytes: no room for a sig
        GO_TEXT + b"\n" + PETER_SIG.replace(b"AM=\n", b"AN=\n"),  # non-canonical base64
        GO_TEXT + b"\n" + PETER_SIG.replace(b"=\n", b"\n"),  # missing padding
        GO_TEXT + b"\n" + b"\xe2\x80\x94\xc2\xa0PeterNeumann x08g\n",  # NBSP after dash
        b"no final newline\n\n".rstrip(b"\n") + b"\n" + PETER_SIG,  # no blank line
    ],
)
def test_malformed_note_is_rejected(note: bytes) -> None:
    with pytest.raises(NoteError):
        open_note(note, [NoteVerifier.from_vkey(PETER_VKEY)])


def test_more_than_100_signature_lines_are_rejected() -> None:
    peter = NoteVerifier.from_vkey(PETER_VKEY)
    with pytest.raises(NoteTooLarge):
        open_note(GO_TEXT + b"\n" + PETER_SIG * (MAX_SIGNATURES + 1), [peter])
    _, verified, _ = open_note(GO_TEXT + b"\n" + PETER_SIG * MAX_SIGNATURES, [peter])
    assert len(verified) == 1


def test_huge_note_is_rejected_before_parsing() -> None:
    with pytest.raises(NoteTooLarge):
        open_note(b"a\n" * 600_000 + b"\n" + PETER_SIG, [NoteVerifier.from_vkey(PETER_VKEY)])


def test_known_key_with_bad_signature_rejects_note() -> None:
    """Go's 'Invalid signature' case: four bytes spliced into a known key's signature."""
    peter = NoteVerifier.from_vkey(PETER_VKEY)
    with pytest.raises(NoteSignatureInvalid):
        open_note(GO_TEXT + b"\n" + PETER_SIG[:60] + b"ABCD" + PETER_SIG[60:], [peter])


def test_signature_name_collision_with_other_id_is_ignored() -> None:
    """Same name, another key id: an unknown key, never checked against ours."""
    peter = NoteVerifier.from_vkey(PETER_VKEY)
    impostor = NoteSigner("PeterNeumann", bytes([1]) * 32)
    note = GO_TEXT + b"\n" + PETER_SIG + sign_note(GO_TEXT, impostor)[len(GO_TEXT) + 1 :]
    _, verified, unknown = open_note(note, [peter])
    assert [s.key_id for s in verified] == [peter.key_id]
    assert [s.key_id for s in unknown] == [impostor.key_id]


def test_body_with_blank_lines_splits_at_last_blank_line() -> None:
    signer = NoteSigner("example.com/x", bytes([3]) * 32)
    body = b"a\n\nb\n\n"
    note = sign_note(body, signer)
    assert open_note(note, [signer.verifier()])[0] == body


@pytest.mark.parametrize(
    "body",
    [
        b"example.com/log\n5\n",  # no root
        b"\n5\n" + base64.b64encode(bytes(32)) + b"\n",  # empty origin
        b"example.com/log\n05\n" + base64.b64encode(bytes(32)) + b"\n",  # leading zero
        b"example.com/log\n-5\n" + base64.b64encode(bytes(32)) + b"\n",  # negative
        b"example.com/log\n\xd9\xa5\n" + base64.b64encode(bytes(32)) + b"\n",  # Arabic-Indic 5
        b"example.com/log\n5\n" + base64.b64encode(bytes(31)) + b"\n",  # short root
        b"example.com/log\n5\n" + base64.b64encode(bytes(32)),  # no final newline
        b"example.com/log\n5\n" + base64.b64encode(bytes(32)) + b"\n\next\n",  # empty extension
        b"example.com/log\n99999999999999999999\n" + base64.b64encode(bytes(32)) + b"\n",  # > 2^63
    ],
)
def test_malformed_checkpoint_is_rejected(body: bytes) -> None:
    with pytest.raises(CheckpointMalformed):
        Checkpoint.parse(body)


def test_checkpoint_origin_must_be_the_log_key_name() -> None:
    log = NoteSigner("example.com/other", bytes([7]) * 32)
    with pytest.raises(CheckpointMalformed, match="origin"):
        open_checkpoint(sign_note(C2SP_CHECKPOINT_BODY, log), log.verifier())


def test_signer_repr_and_errors_never_show_the_private_key() -> None:
    signer = NoteSigner.from_skey(PETER_SKEY)
    secret = PETER_SKEY.split("+", 4)[4]
    assert secret not in repr(signer)
    assert secret not in str(signer)
    mangled = PETER_SKEY[:-3] + "AAA"
    with pytest.raises(NoteKeyInvalid) as info:
        NoteSigner.from_skey(mangled)
    assert mangled.split("+", 4)[4] not in str(info.value)


# --- properties (libsodium agrees on every signature we make) -----------------------------

_note_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x7f"),
    max_size=200,
).map(lambda s: (s + "\n").encode("utf-8"))


@settings(max_examples=60, deadline=None)
@given(body=_note_text, seed=st.binary(min_size=32, max_size=32))
def test_sign_open_round_trip_and_nacl_agrees(body: bytes, seed: bytes) -> None:
    signer = NoteSigner("example.com/prop", seed)
    note = sign_note(body, signer)
    opened, verified, _ = open_note(note, [signer.verifier()])
    assert opened == body
    _nacl_verify(signer.verifier(), body, verified[0].signature)
    assert signer.public_key == bytes(nacl.signing.SigningKey(seed).verify_key)


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
    timestamp=st.integers(min_value=0, max_value=2**63 - 1),
)
def test_checkpoint_round_trip_and_cosignature_nacl_agrees(
    size: int, root: bytes, timestamp: int
) -> None:
    checkpoint = Checkpoint("tally.example/31337/0xabc", size, root)
    assert Checkpoint.parse(checkpoint.body()) == checkpoint
    witness = _witness()
    line = cosign(checkpoint.body(), witness, timestamp)
    assert verify_cosignature(line, checkpoint.body(), witness.verifier()) == timestamp
    raw = parse_signature_line(line).signature
    _nacl_verify(witness.verifier(), cosignature_message(checkpoint.body(), timestamp), raw[8:])
