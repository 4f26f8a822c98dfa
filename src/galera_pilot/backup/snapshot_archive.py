"""A snapshot archive: one file that carries a whole cluster elsewhere (`galera-pilot snapshot save` and
`snapshot restore`, the cartridge's snapshot hook done right). It holds the data as one full physical
backup set, the cluster-wide settings and layout, and the credentials: the restored datadir's accounts
have those passwords, so the new cluster must use them. Because of them the whole file is sealed with a
backup key (backup/encryption.py: authenticated, in segments, a cut or altered file fails) and written
mode 0600.

Inside the seal, a sequence of members, each its name and then its bytes in length-prefixed chunks:

    u16 name length | name | (u32 length | bytes)* | u32 0        a member, streamed (no size needed first)
    u16 0                                                      the end

    snapshot.json       what it is: format, cluster name, members, SST method, TLS, settings, the manifest
    credentials.yaml    the admin and SST accounts
    set/NAME            the backup set's objects, in the clear inside the seal (an encrypted repository's
                        are decrypted on the way: the snapshot has its own key)

Reading writes only the set's objects to disk, each under a name checked against OBJECT_NAME, into the
folder it is given; nothing read from the file ever chooses a path.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from galera_pilot.backup.encryption import BackupKey, EncryptionError, decrypt, encrypt
from galera_pilot.backup.repository import OBJECT_NAME
from galera_pilot.errors import PilotError

FORMAT = 1
HEADER = "snapshot.json"
CREDENTIALS = "credentials.yaml"
SET_PREFIX = "set/"
CHUNK = 1 << 20
_NAME = struct.Struct(">H")
_LENGTH = struct.Struct(">I")


class SnapshotError(PilotError):
    """The file is not a snapshot, is damaged, or was sealed with another key; the message says which."""


@dataclass(frozen=True)
class Member:
    name: str
    content: bytes | BinaryIO  # small members in memory; a set's object as an open stream


@dataclass(frozen=True)
class Unpacked:
    header: dict[str, Any]
    credentials: str
    objects: dict[str, Path]  # the set's object name -> where it was written


def write_snapshot(path: Path, key: BackupKey, members: Iterable[Member]) -> int:
    """Seal `members` into `path` (through a temporary file beside it, renamed at the end: a failed save
    never leaves half a snapshot under the name). Returns the file's size."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "xb", opener=lambda name, flags: os.open(name, flags, 0o600)) as out:
            for sealed in encrypt(key, _framed(members)):
                out.write(sealed)
        tmp.replace(path)
    except FileExistsError:
        raise SnapshotError(f"{tmp} exists: another save into {path} runs, or one was cut short (remove it)") from None
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise SnapshotError(f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path.stat().st_size


def _framed(members: Iterable[Member]) -> Iterator[bytes]:
    for member in members:
        name = member.name.encode()
        yield _NAME.pack(len(name)) + name
        if isinstance(member.content, bytes):
            for at in range(0, len(member.content), CHUNK):
                piece = member.content[at:at + CHUNK]
                yield _LENGTH.pack(len(piece)) + piece
        else:
            while piece := member.content.read(CHUNK):
                yield _LENGTH.pack(len(piece)) + piece
        yield _LENGTH.pack(0)
    yield _NAME.pack(0)


def read_snapshot(path: Path, key: BackupKey, into: Path) -> Unpacked:
    """Open `path` with `key`; the set's objects are written into `into` (which must exist, private)."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below; the stream is read lazily
    except OSError as error:
        raise SnapshotError(f"cannot read {path}: {error.strerror or error}") from None
    with raw:
        stream = _Plain(decrypt(key, iter(lambda: raw.read(CHUNK), b"")), path)
        header: dict[str, Any] | None = None
        credentials: str | None = None
        objects: dict[str, Path] = {}
        while name := stream.name():
            if name == HEADER:
                header = _header(stream.whole(), path)
            elif name == CREDENTIALS:
                credentials = stream.whole().decode()
            elif name.startswith(SET_PREFIX) and OBJECT_NAME.match(name[len(SET_PREFIX):]) \
                    and name[len(SET_PREFIX):] != "manifest.json":
                target = into / name[len(SET_PREFIX):]
                with open(target, "xb") as out:
                    for piece in stream.pieces():
                        out.write(piece)
                objects[name[len(SET_PREFIX):]] = target
            else:
                raise SnapshotError(f"{path} holds a member {name!r} no snapshot has: it is not one of ours")
    if header is None or credentials is None:
        raise SnapshotError(f"{path} has no {HEADER if header is None else CREDENTIALS}: not a whole snapshot")
    return Unpacked(header, credentials, objects)


def _header(data: bytes, path: Path) -> dict[str, Any]:
    try:
        header = json.loads(data)
    except ValueError:
        raise SnapshotError(f"{path}: its {HEADER} is not JSON") from None
    found = header.get("galera_pilot_snapshot") if isinstance(header, dict) else None
    if found != FORMAT:
        raise SnapshotError(f"{path}: snapshot format {found} is not {FORMAT}, the one this galera-pilot reads")
    return header


class _Plain:
    """The framed plaintext, read as it is decrypted; an EncryptionError (wrong key, a cut or altered
    file) becomes a SnapshotError naming the file."""

    def __init__(self, plain: Iterator[bytes], path: Path) -> None:
        self._plain = plain
        self._buffer = bytearray()
        self._path = path

    def _take(self, size: int) -> bytes:
        try:
            while len(self._buffer) < size:
                chunk = next(self._plain, None)
                if chunk is None:
                    raise SnapshotError(f"{self._path} ends in the middle: it is cut short")
                self._buffer += chunk
        except EncryptionError as error:
            raise SnapshotError(f"{self._path}: {error}") from None
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def name(self) -> str:
        (length,) = _NAME.unpack(self._take(_NAME.size))
        if length == 0:
            self._end()
            return ""
        try:
            return self._take(length).decode()
        except UnicodeDecodeError:
            raise SnapshotError(f"{self._path}: a member's name is not text: not a snapshot") from None

    def pieces(self) -> Iterator[bytes]:
        while True:
            (length,) = _LENGTH.unpack(self._take(_LENGTH.size))
            if length == 0:
                return
            if length > CHUNK:
                raise SnapshotError(f"{self._path}: a chunk of {length} bytes: not a snapshot")
            yield self._take(length)

    def whole(self) -> bytes:
        return b"".join(self.pieces())

    def _end(self) -> None:
        """The end marker must be the last plaintext, and the seal must close (its final segment)."""
        try:
            rest = b"".join(self._plain)
        except EncryptionError as error:
            raise SnapshotError(f"{self._path}: {error}") from None
        if self._buffer or rest:
            raise SnapshotError(f"{self._path} holds bytes after its end: not a snapshot")
