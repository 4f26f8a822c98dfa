"""Encryption at rest for backup objects: a streaming AES-256-GCM format, and the key file it uses.

A backup stream has no known length and may be far larger than memory, so it is sealed in segments
(the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár, as in Tink and age):

    header   magic b"GPENC1" | version 0x01 | key id (8) | salt (16) | segment size (uint32 BE)   35 bytes
    segment  flag (1: 0x00 more, 0x01 final) | plaintext length (uint32 BE) | AES-GCM ciphertext + tag (16)

Each object gets its own subkey, HKDF-SHA256(key, salt, INFO), from a fresh random salt, so a counter can
be the nonce (4 zero bytes | uint64 BE segment number) without any nonce ever repeating under one key, and
segments spliced from another object never authenticate. The associated data of segment n is the whole
header | uint64 BE n | flag: a reordered, dropped or duplicated segment fails its tag, the header
(segment size, key id) cannot be altered, and a stream cut at a segment boundary is caught because its
last segment is not the one marked final. The flag and the length are in the clear (and authenticated)
so that the reader can tell those failures apart and say which happened. Every segment but the last holds
exactly `segment size` plaintext bytes, so one plaintext has one layout and memory stays at ~2 segments.

The plaintext is released segment by segment, each one authenticated, but only the end of the iterator
proves the object complete: a reader must treat its output as invalid if `decrypt` raises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from galera_pilot.errors import PilotError

MAGIC = b"GPENC1"
VERSION = 1
KEY_SIZE = 32
_HEADER = struct.Struct(">6sB8s16sI")  # magic, version, key id, salt, segment size
_RECORD = struct.Struct(">BI")  # flag, plaintext length
_TAG = 16
_INFO = b"galera-pilot backup object v1"
MAX_SEGMENT = 1 << 26  # a hostile header must not make the reader allocate gigabytes
_MORE, _FINAL = 0, 1


class EncryptionError(PilotError):
    """A key file cannot be used, or an object cannot be decrypted; the message says which and why."""


class BackupKey:
    """The 32-byte secret and its public id: the first 8 bytes of its sha256, in hex (what a manifest
    records; `base64 -d KEYFILE | sha256sum | cut -c1-16` gives it too). The repr shows only the id."""

    __slots__ = ("key_id", "secret")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_SIZE:
            raise ValueError(f"a backup key is {KEY_SIZE} bytes, not {len(secret)}")
        self.secret = bytes(secret)
        self.key_id = hashlib.sha256(self.secret).digest()[:8].hex()

    def __repr__(self) -> str:
        return f"BackupKey(key_id={self.key_id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BackupKey) and secrets.compare_digest(self.secret, other.secret)

    def __hash__(self) -> int:
        return hash(self.key_id)


def load_key(path: Path) -> BackupKey:
    """The key in `path`, refused unless the file is private to its owner and holds base64 of 32 bytes.
    The mode is checked on the open file (no window between check and read)."""
    try:
        with open(path, "rb") as file:
            status = os.fstat(file.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise EncryptionError(f"key file {path} is not a regular file")
            if status.st_mode & 0o077:
                raise EncryptionError(f"key file {path} is accessible by group or others (mode "
                                      f"{stat.S_IMODE(status.st_mode):04o}): chmod 600 it")
            content = file.read(1024)
    except FileNotFoundError:
        raise EncryptionError(f"key file {path} does not exist") from None
    except IsADirectoryError:
        raise EncryptionError(f"key file {path} is not a regular file") from None
    except OSError as error:
        raise EncryptionError(f"cannot read key file {path}: {error.strerror}") from None
    try:
        secret = base64.b64decode(content.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionError(f"key file {path} is not one line of base64 text") from None
    if len(secret) != KEY_SIZE:
        raise EncryptionError(f"key file {path} holds {len(secret)} bytes, a backup key is {KEY_SIZE}")
    return BackupKey(secret)


def generate_key_file(path: Path) -> BackupKey:
    """Write a new random key to `path`, private (0600) from its creation; an existing file is kept."""
    key = BackupKey(secrets.token_bytes(KEY_SIZE))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise EncryptionError(f"key file {path} already exists: not overwritten") from None
    except OSError as error:
        raise EncryptionError(f"cannot create key file {path}: {error.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, base64.b64encode(key.secret) + b"\n")
        os.fsync(fd)
    except OSError as error:
        os.close(fd)
        path.unlink(missing_ok=True)  # never leave a half-written key behind
        raise EncryptionError(f"cannot write key file {path}: {error.strerror}") from None
    os.close(fd)
    return key


def is_encrypted(first_bytes: bytes) -> bool:
    """Whether an object starting with these bytes (at least 6 of them) is in this format."""
    return first_bytes[:len(MAGIC)] == MAGIC


def key_id_of(first_bytes: bytes) -> str | None:
    """The id of the key an object was encrypted with, from its first 15+ bytes; None if not encrypted."""
    if not is_encrypted(first_bytes) or len(first_bytes) < 15 or first_bytes[6] != VERSION:
        return None
    return first_bytes[7:15].hex()


def encrypt(key: BackupKey, chunks: Iterable[bytes], segment: int = 1 << 20) -> Iterator[bytes]:
    """The encrypted object, streamed: a header, then the plaintext re-cut into `segment`-byte segments.
    A full segment is held back until more plaintext is known to follow, so the final one is marked."""
    if not 0 < segment <= MAX_SEGMENT:  # checked now, not at the first next()
        raise ValueError(f"segment size must be 1..{MAX_SEGMENT}, not {segment}")
    return _encrypt(key, chunks, segment)


def _encrypt(key: BackupKey, chunks: Iterable[bytes], segment: int) -> Iterator[bytes]:
    salt = secrets.token_bytes(16)
    header = _HEADER.pack(MAGIC, VERSION, bytes.fromhex(key.key_id), salt, segment)
    aead = AESGCM(_subkey(key, salt))
    yield header
    pending, number = bytearray(), 0
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            if len(pending) == segment:
                yield _seal(aead, header, number, _MORE, pending)
                pending, number = bytearray(), number + 1
            room = segment - len(pending)
            pending += view[:room]
            view = view[room:]
    yield _seal(aead, header, number, _FINAL, pending)


def decrypt(key: BackupKey, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The plaintext of an encrypted object, streamed; raises EncryptionError naming what is wrong."""
    source = _Reader(chunks)
    header = source.read(_HEADER.size)
    if not is_encrypted(header):
        raise EncryptionError("not an encrypted backup object (no GPENC1 header)")
    if len(header) < _HEADER.size:
        raise EncryptionError("encrypted object truncated inside its header")
    _, version, key_id, salt, segment = _HEADER.unpack(header)
    if version != VERSION:
        raise EncryptionError(f"encrypted object has format version {version}, this program reads {VERSION}")
    if key_id.hex() != key.key_id:
        raise EncryptionError(f"object encrypted with key {key_id.hex()}, this key is {key.key_id}")
    if not 0 < segment <= MAX_SEGMENT:
        raise EncryptionError(f"encrypted object header is corrupt (segment size {segment})")
    aead = AESGCM(_subkey(key, salt))
    number = 0
    while True:
        record = source.read(_RECORD.size)
        if not record:
            after = f"segment {number - 1}" if number else "its header"
            raise EncryptionError(f"encrypted object truncated: it ends after {after}, without a final segment")
        if len(record) < _RECORD.size:
            raise EncryptionError(f"encrypted object truncated inside segment {number}")
        flag, length = _RECORD.unpack(record)
        if flag not in (_MORE, _FINAL) or length > segment or (flag == _MORE and length != segment):
            raise EncryptionError(f"segment {number} is corrupt (flag {flag}, length {length})")
        sealed = source.read(length + _TAG)
        if len(sealed) < length + _TAG:
            raise EncryptionError(f"encrypted object truncated inside segment {number}")
        try:
            plain = aead.decrypt(_nonce(number), sealed, _aad(header, number, flag))
        except InvalidTag:
            raise EncryptionError(f"segment {number} fails authentication: the object is corrupt "
                                  "or was tampered with") from None
        if plain:
            yield plain
        if flag == _FINAL:
            if not source.at_end():
                raise EncryptionError(f"trailing data after the final segment ({number})")
            return
        number += 1


def _subkey(key: BackupKey, salt: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=_INFO).derive(key.secret)


def _nonce(number: int) -> bytes:
    return b"\0\0\0\0" + number.to_bytes(8, "big")


def _aad(header: bytes, number: int, flag: int) -> bytes:
    return header + number.to_bytes(8, "big") + bytes((flag,))


def _seal(aead: AESGCM, header: bytes, number: int, flag: int, plain: bytearray) -> bytes:
    return _RECORD.pack(flag, len(plain)) + aead.encrypt(_nonce(number), plain, _aad(header, number, flag))


class _Reader:
    """Exact-size reads over chunks split anywhere. The buffer is compacted only when it must grow, when
    what is left is shorter than one read: large input chunks cost no repeated copying."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self._at = 0

    def read(self, size: int) -> bytes:
        """`size` bytes, or fewer only at the end of the input."""
        while len(self._buffer) - self._at < size and self._fill():
            pass
        with memoryview(self._buffer) as view:  # one copy, released before the buffer may be resized
            out = bytes(view[self._at:self._at + size])
        self._at += len(out)
        return out

    def at_end(self) -> bool:
        return len(self._buffer) == self._at and not self._fill()

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                del self._buffer[:self._at]
                self._at = 0
                self._buffer += chunk
                return True
        return False
