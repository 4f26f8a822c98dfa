"""The encrypted backup format: round trips whatever the chunking, every way a stream can be damaged is
refused with its own message, and the key file rules."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from galera_pilot.backup.encryption import (
    MAGIC,
    BackupKey,
    EncryptionError,
    decrypt,
    encrypt,
    generate_key_file,
    is_encrypted,
    key_id_of,
    load_key,
)
from galera_pilot.errors import PilotError

KEY = BackupKey(bytes(range(32)))
OTHER = BackupKey(bytes(range(1, 33)))
HEADER = 35
RECORD = 5 + 16  # flag, length, tag


def split(data: bytes, rng: random.Random, most: int = 40) -> list[bytes]:
    """`data` cut at random places, with some empty chunks among them."""
    chunks, at = [], 0
    while at < len(data):
        size = rng.randint(0, most)
        chunks.append(data[at:at + size])
        at += size
    return chunks


def sealed(data: bytes, segment: int = 16, key: BackupKey = KEY) -> bytes:
    return b"".join(encrypt(key, [data], segment))


def opened(blob: bytes | Iterable[bytes], key: BackupKey = KEY) -> bytes:
    return b"".join(decrypt(key, [blob] if isinstance(blob, bytes) else blob))


def segments(blob: bytes) -> list[bytes]:
    """The segment records of an encrypted object, each with its flag and length."""
    found, at = [], HEADER
    while at < len(blob):
        _, length = struct.unpack(">BI", blob[at:at + 5])
        found.append(blob[at:at + 5 + length + 16])
        at += 5 + length + 16
    return found


def refused(blob: bytes | Iterable[bytes], key: BackupKey = KEY) -> str:
    with pytest.raises(EncryptionError) as caught:
        opened(blob, key)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ---- round trips ---------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000), segment=st.integers(1, 300), seed=st.integers(0, 2**32))
def test_round_trip_whatever_the_chunking(data: bytes, segment: int, seed: int) -> None:
    rng = random.Random(seed)
    blob = b"".join(encrypt(KEY, split(data, rng), segment))
    assert opened(split(blob, rng, most=segment * 3)) == data
    count = max(1, -(-len(data) // segment))
    assert len(blob) == HEADER + count * RECORD + len(data)


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 128, 129, 1000])
def test_segment_boundaries(size: int) -> None:
    data = os.urandom(size)
    blob = sealed(data, 64)
    records = segments(blob)
    assert len(records) == max(1, -(-size // 64))
    assert [r[0] for r in records] == [0] * (len(records) - 1) + [1]  # only the last is final
    assert opened(blob) == data


def test_empty_input_is_a_header_and_one_final_empty_segment() -> None:
    blob = sealed(b"")
    assert len(blob) == HEADER + RECORD
    assert blob[HEADER:HEADER + 5] == b"\x01\0\0\0\0"
    assert opened(blob) == b""


def test_plaintext_is_recut_into_segments_whatever_the_input_chunks() -> None:
    data = os.urandom(10_000)
    one = list(encrypt(KEY, [data], 1024))
    many = list(encrypt(KEY, split(data, random.Random(1), most=3000), 1024))
    assert [len(c) for c in one] == [len(c) for c in many] == [HEADER] + [1024 + RECORD] * 9 + [784 + RECORD]
    assert all(len(chunk) <= 1024 for chunk in decrypt(KEY, one))


def test_default_segment_is_one_mebibyte() -> None:
    data = os.urandom((1 << 20) + 1)
    assert [len(c) for c in encrypt(KEY, [data])] == [HEADER, (1 << 20) + RECORD, 1 + RECORD]


def test_both_directions_stream() -> None:
    """Neither side reads its whole input before producing output (the object may not fit in memory)."""

    def endless() -> Iterator[bytes]:
        while True:
            yield b"x" * 100

    out = encrypt(KEY, endless(), 64)
    first = [next(out) for _ in range(4)]

    def then_fail() -> Iterator[bytes]:
        yield from first
        raise AssertionError("read past what was needed")

    plain = decrypt(KEY, then_fail())
    assert next(plain) == b"x" * 64
    assert next(plain) == b"x" * 64


def test_bytes_like_chunks_are_accepted() -> None:
    data = os.urandom(300)
    chunks = [bytearray(data[:100]), memoryview(data)[100:]]
    assert opened(encrypt(KEY, chunks, 64)) == data  # type: ignore[arg-type]


def test_two_encryptions_of_the_same_data_differ() -> None:
    data = b"the same data" * 100
    first, second = sealed(data), sealed(data)
    assert first != second
    assert first[15:31] != second[15:31]  # the salt
    assert first[HEADER + 5:HEADER + 21] != second[HEADER + 5:HEADER + 21]
    assert opened(first) == opened(second) == data


def test_a_bad_segment_size_is_refused_at_once() -> None:
    for segment in (0, -1, (1 << 26) + 1):
        with pytest.raises(ValueError):
            encrypt(KEY, [b"x"], segment)


# ---- what the header says ------------------------------------------------------------------------------
def test_header_layout_and_peeking() -> None:
    blob = sealed(b"data", 16)
    assert blob[:6] == MAGIC and blob[6] == 1
    assert blob[7:15].hex() == KEY.key_id
    assert struct.unpack(">I", blob[31:35]) == (16,)
    assert is_encrypted(blob[:6]) and is_encrypted(blob)
    assert key_id_of(blob[:15]) == KEY.key_id
    assert key_id_of(blob[:14]) is None
    for plain in (b"", b"GPENC", b"\x28\xb5\x2f\xfd rest of a zstd frame", b"GPENC2" + bytes(30)):
        assert not is_encrypted(plain)
        assert key_id_of(plain) is None


def test_key_id_is_the_start_of_the_sha256_of_the_key() -> None:
    assert KEY.key_id == hashlib.sha256(bytes(range(32))).hexdigest()[:16]
    assert KEY.key_id != OTHER.key_id


# ---- what is refused -----------------------------------------------------------------------------------
@pytest.mark.parametrize("blob", [b"", b"GP", b"\x28\xb5\x2f\xfd" + bytes(100), b"plain text backup"])
def test_not_an_encrypted_object(blob: bytes) -> None:
    assert "not an encrypted backup object" in refused(blob)


def test_another_key_is_refused_by_its_id() -> None:
    message = refused(sealed(b"secret data"), OTHER)
    assert message == f"object encrypted with key {KEY.key_id}, this key is {OTHER.key_id}"


def test_another_version_is_refused() -> None:
    blob = bytearray(sealed(b"data"))
    blob[6] = 2
    assert "format version 2" in refused(bytes(blob))


def test_a_hostile_segment_size_is_refused_before_reading_it() -> None:
    blob = bytearray(sealed(b"data"))
    blob[31:35] = struct.pack(">I", 0xFFFFFFFF)
    assert "header is corrupt" in refused(bytes(blob))


def test_every_truncation_is_refused() -> None:
    blob = sealed(os.urandom(50), 16)
    for end in range(len(blob)):
        refused(blob[:end])
    boundary = HEADER + 2 * (16 + RECORD)
    assert refused(blob[:boundary]) == (
        "encrypted object truncated: it ends after segment 1, without a final segment")
    assert "after its header" in refused(blob[:HEADER])
    assert "inside its header" in refused(blob[:20])
    assert "inside segment 2" in refused(blob[:boundary + 3])
    assert "inside segment 2" in refused(blob[:boundary + 10])


def test_dropped_reordered_or_duplicated_segments_fail() -> None:
    blob = sealed(os.urandom(64), 16)
    header, records = blob[:HEADER], segments(blob)
    assert len(records) == 4
    swapped = header + records[1] + records[0] + records[2] + records[3]
    assert refused(swapped) == "segment 0 fails authentication: the object is corrupt or was tampered with"
    assert "segment 1 fails" in refused(header + records[0] + records[2] + records[3])
    assert "segment 1 fails" in refused(header + records[0] + records[0] + records[1] + records[2] + records[3])


def test_data_after_the_final_segment_is_refused() -> None:
    data = os.urandom(40)
    blob = sealed(data, 16)
    assert refused(blob + b"\0") == "trailing data after the final segment (2)"
    assert "trailing data" in refused(blob + segments(blob)[0])
    assert "trailing data" in refused([blob, b"", b"more"])
    assert opened([blob, b"", b""]) == data  # empty chunks after the end are no data


def test_a_segment_of_another_object_fails() -> None:
    first, second = sealed(os.urandom(32), 16), sealed(os.urandom(32), 16)
    spliced = first[:HEADER] + segments(first)[0] + segments(second)[1]
    assert "segment 1 fails authentication" in refused(spliced)


def test_flags_cannot_be_changed() -> None:
    blob = bytearray(sealed(os.urandom(32), 16))
    as_final = bytearray(blob)
    as_final[HEADER] = 1  # segment 0 claims to be the last: its tag says otherwise
    assert "segment 0 fails authentication" in refused(bytes(as_final))
    last = HEADER + 16 + RECORD
    not_final = bytearray(blob)
    not_final[last] = 0
    assert "segment 1" in refused(bytes(not_final))
    odd = bytearray(blob)
    odd[HEADER] = 7
    assert "segment 0 is corrupt (flag 7" in refused(bytes(odd))


@pytest.mark.parametrize("size", [0, 5, 16, 40])
def test_every_flipped_bit_is_detected(size: int) -> None:
    """The header's too: its segment size is bound by each segment's associated data, not just by the
    length checks (a single short segment would pass those)."""
    blob = sealed(os.urandom(size), 16)
    for bit in range(len(blob) * 8):
        damaged = bytearray(blob)
        damaged[bit // 8] ^= 1 << (bit % 8)
        refused(bytes(damaged))


def test_segments_never_share_a_nonce() -> None:
    """Equal plaintext segments must not give equal ciphertext (a repeated GCM nonce would)."""
    first, second = segments(sealed(b"A" * 32, 16))
    assert first[5:21] != second[5:21]


def reference(key: bytes, records: list[tuple[int, bytes]], segment: int, salt: bytes = bytes(16)) -> bytes:
    """The format written again from its description, independently of the module."""
    header = MAGIC + b"\x01" + hashlib.sha256(key).digest()[:8] + salt + struct.pack(">I", segment)
    aead = AESGCM(HKDF(hashes.SHA256(), 32, salt, b"galera-pilot backup object v1").derive(key))
    out = [header]
    for number, (flag, plain) in enumerate(records):
        counter = struct.pack(">Q", number)
        out.append(struct.pack(">BI", flag, len(plain))
                   + aead.encrypt(b"\0" * 4 + counter, plain, header + counter + bytes((flag,))))
    return b"".join(out)


def test_the_format_is_as_documented() -> None:
    secret = bytes(range(32))
    blob = reference(secret, [(0, b"a" * 16), (0, b"b" * 16), (1, b"c" * 3)], 16, salt=os.urandom(16))
    assert opened(blob) == b"a" * 16 + b"b" * 16 + b"ccc"
    assert opened(reference(secret, [(1, b"")], 16)) == b""
    ours = sealed(b"a" * 16 + b"b" * 16 + b"ccc", 16)
    assert ours == reference(secret, [(0, b"a" * 16), (0, b"b" * 16), (1, b"c" * 3)], 16, salt=ours[15:31])


def test_only_the_final_segment_may_be_short() -> None:
    """One plaintext has one layout: a well-sealed stream with a short middle segment is still refused."""
    secret = bytes(range(32))
    assert "segment 0 is corrupt" in refused(reference(secret, [(0, b"short"), (1, b"end")], 16))
    assert "segment 0 is corrupt" in refused(reference(secret, [(1, b"x" * 17)], 16))


@settings(max_examples=100, deadline=None)
@given(size=st.integers(0, 5000), segment=st.integers(1, 700), where=st.floats(0, 1), bit=st.integers(0, 7))
def test_a_flipped_bit_in_any_segment_names_it(size: int, segment: int, where: float, bit: int) -> None:
    blob = sealed(os.urandom(size), segment)
    position = HEADER + 5 + min(int(where * (len(blob) - HEADER - 5)), len(blob) - HEADER - 6)
    damaged = bytearray(blob)
    damaged[position] ^= 1 << bit
    at, number = HEADER, 0
    for record in segments(blob):
        if at + len(record) > position:
            break
        at, number = at + len(record), number + 1
    message = refused(bytes(damaged))
    assert f"segment {number}" in message


def test_errors_are_pilot_errors() -> None:
    assert issubclass(EncryptionError, PilotError)


# ---- key files -----------------------------------------------------------------------------------------
def test_generated_key_file_is_private_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "backup.key"
    key = generate_key_file(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    text = path.read_text()
    assert text.endswith("\n") and text.count("\n") == 1
    assert len(base64.b64decode(text)) == 32
    loaded = load_key(path)
    assert loaded == key and loaded.key_id == key.key_id
    assert opened(encrypt(key, [b"data"]), loaded) == b"data"
    assert generate_key_file(tmp_path / "second.key") != key


def test_generate_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "backup.key"
    key = generate_key_file(path)
    with pytest.raises(EncryptionError, match="already exists"):
        generate_key_file(path)
    assert load_key(path) == key


def test_generate_in_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(EncryptionError, match="cannot create key file"):
        generate_key_file(tmp_path / "nowhere" / "backup.key")


def test_a_missing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.key"
    with pytest.raises(EncryptionError) as caught:
        load_key(path)
    assert str(caught.value) == f"key file {path} does not exist"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o602, 0o610, 0o601])
def test_a_key_file_others_can_reach_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "backup.key"
    generate_key_file(path)
    os.chmod(path, mode)
    with pytest.raises(EncryptionError) as caught:
        load_key(path)
    assert str(caught.value) == (f"key file {path} is accessible by group or others (mode {mode:04o}): "
                                 "chmod 600 it")


@pytest.mark.parametrize("content", [
    b"",
    b"\n",
    b"not base64 at all!\n",
    base64.b64encode(bytes(31)) + b"\n",
    base64.b64encode(bytes(33)) + b"\n",
    base64.b64encode(bytes(16)) + b"\n" + base64.b64encode(bytes(16)) + b"\n",
    bytes(32),
])
def test_a_key_file_that_is_not_base64_of_32_bytes(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "backup.key"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(EncryptionError) as caught:
        load_key(path)
    message = str(caught.value)
    assert message.startswith(f"key file {path} ") and "\n" not in message


@pytest.mark.parametrize("content", [base64.b64encode(bytes(range(32))),
                                     base64.b64encode(bytes(range(32))) + b"\r\n",
                                     b"  " + base64.b64encode(bytes(range(32))) + b"\n"])
def test_surrounding_whitespace_is_allowed(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "backup.key"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    assert load_key(path) == KEY


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    with pytest.raises(EncryptionError, match="is not a regular file"):
        load_key(folder)


def test_repr_never_shows_the_key(tmp_path: Path) -> None:
    key = generate_key_file(tmp_path / "backup.key")
    shown = [repr(key), str(key), f"{key}", repr([key]), repr({"key": key})]
    for text in shown:
        assert key.key_id in text
        for secret in (key.secret.hex(), base64.b64encode(key.secret).decode(), repr(key.secret)[2:-1]):
            assert secret not in text
    assert not hasattr(key, "__dict__")


def test_a_key_is_32_bytes() -> None:
    with pytest.raises(ValueError):
        BackupKey(bytes(31))
