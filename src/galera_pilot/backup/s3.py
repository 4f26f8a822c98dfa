"""A backup repository in an S3-compatible bucket, with LocalRepository's interface and semantics.

    <prefix>/<cluster>/<set id>/manifest.json   rewritten whole (a PUT is atomic): `running` first, `complete` last
    <prefix>/<cluster>/<set id>/<object>        a multipart upload in parts of `part_size`, hashed on the way
    <prefix>/<cluster>/binlogs/<node>/<file>.zst   an archived binlog, uploaded the same way
    <prefix>/<cluster>/binlogs/<node>/<file>.json  its record, PUT once the object is whole

A backup stream (mariabackup | zstd) has no length known in advance, and one PUT needs one: so it goes up in
parts, one after the other, and a few parts at most are in memory whatever the object's size; a failing
endpoint stops it at its first failed part. Its sha256 is taken as it is read, never by reading it back.

Every failure is a RepositoryError naming endpoint, bucket and cause on one line. minio's defaults (5 minutes'
timeouts, 5 retries) would hang a backup on an unreachable endpoint for half an hour; here a refused endpoint
fails at once and a silent one within 20 s. No credential appears in a message or repr.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error, ServerError
from minio.helpers import check_bucket_name

from galera_pilot.backup.binlog_index import ArchivedBinlog
from galera_pilot.backup.manifest import Manifest, Problem, StoredObject, Verification
from galera_pilot.backup.repository import (
    BINLOGS,
    CHUNK,
    OBJECT_NAME,
    RepositoryError,
    SetRecords,
    binlog_names,
    binlog_record_text,
    check_set_id,
    parse_binlog_record,
    verify_binlog_object,
    verify_objects,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

PART_SIZE = 16 << 20
MIN_PART_SIZE = 5 << 20  # S3's floor for every part but the last
CONNECT_TIMEOUT, READ_TIMEOUT = 4.0, 20.0  # seconds: 3 connection attempts (~13 s), one read
MANIFEST = "manifest.json"
_CAUSES = {"NoSuchBucket": "the bucket does not exist", "InvalidAccessKeyId": "the access key is not known there",
           "SignatureDoesNotMatch": "the secret key does not match the access key",
           "AccessDenied": "access denied to these credentials"}


@dataclass(frozen=True, kw_only=True)
class S3Location:
    """Where the sets live: an endpoint URL (http[s]://host[:port]), its bucket and a key prefix."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"  # what most S3-compatible servers accept; it signs every request
    prefix: str = ""
    ca_file: Path | None = None  # for https: the CA that signed the endpoint's certificate (default: certifi's)

    def __post_init__(self) -> None:
        try:
            url = urlsplit(self.endpoint)
            valid = url.scheme in ("http", "https") and bool(url.hostname) and url.port != 0 and \
                not (url.username or url.path.strip("/") or url.query)
        except ValueError:  # a port that is no number
            valid = False
        if not valid:
            raise RepositoryError(f"S3 endpoint {self.endpoint!r} is not an http(s)://host[:port] URL")
        if self.ca_file is not None and url.scheme != "https":
            raise RepositoryError(f"S3 endpoint {self.endpoint}: a CA file needs an https:// endpoint")
        try:
            check_bucket_name(self.bucket, strict=True)
        except ValueError:
            raise RepositoryError(f"S3 bucket name {self.bucket!r} is not valid") from None

    @property
    def secure(self) -> bool:
        return urlsplit(self.endpoint).scheme == "https"

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).netloc

    def __repr__(self) -> str:
        return (f"S3Location(endpoint={self.endpoint!r}, region={self.region!r}, bucket={self.bucket!r}, "
                f"prefix={self.prefix!r}, access_key='<hidden>', secret_key='<hidden>', ca_file={self.ca_file!r})")


class S3Repository(SetRecords):
    """LocalRepository's methods on a bucket. Nothing is asked of the endpoint before the first call."""

    def __init__(self, location: S3Location, cluster: str, part_size: int = PART_SIZE) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size {part_size} is below S3's minimum of {MIN_PART_SIZE}")
        self.location, self.cluster, self.part_size, self.bucket = location, cluster, part_size, location.bucket
        self.base = "/".join(p for p in (location.prefix.strip("/"), cluster) if p)
        self.dir = f"s3://{location.bucket}/{self.base}"
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT), maxsize=4,
            cert_reqs="CERT_REQUIRED", ca_certs=str(location.ca_file or certifi.where()),
            retries=urllib3.Retry(total=3, connect=2, read=0, status=2, backoff_factor=0.5,
                                  status_forcelist=(500, 502, 503, 504), respect_retry_after_header=False))
        self._client = Minio(location.host, access_key=location.access_key, secret_key=location.secret_key,
                             secure=location.secure, region=location.region, http_client=http)

    @property
    def where(self) -> str:  # the Repository protocol's name for `dir`
        return self.dir

    def key(self, set_id: str, name: str = "") -> str:
        return f"{self.base}/{set_id}/{name}"

    # ---- sets ------------------------------------------------------------------------------------------
    def begin(self, manifest: Manifest) -> Manifest:
        """Refuses an id that has any key already (S3 has no exclusive create: the id's uniqueness, which
        the backup lock guards, is what makes this check enough)."""
        check_set_id(manifest.id)
        with self._s3(f"create backup {manifest.id}"):
            taken = next(iter(self._client.list_objects(self.bucket, self.key(manifest.id), True)), None)
        if taken is not None:
            raise RepositoryError(f"backup {manifest.id} already exists in {self.dir}")
        self._save(manifest)
        return manifest

    def store(self, manifest: Manifest, name: str, stream: BinaryIO | Iterable[bytes]) -> Manifest:
        """Upload `stream` into the set as `name`, hashing it on the way; the manifest gains the object."""
        if not OBJECT_NAME.match(name) or name == MANIFEST:
            raise RepositoryError(f"object name {name!r} is not valid")
        key = self.key(manifest.id, name)
        with self._s3(f"write {key}"):
            if any(o.object_name == key for o in self._client.list_objects(self.bucket, key)):
                raise RepositoryError(f"cannot write {self.bucket}/{key}: it exists")
            reader = _Hashing(stream)
            self._client.put_object(self.bucket, key, cast(BinaryIO, reader), -1, part_size=self.part_size,
                                    num_parallel_uploads=1)
        updated = manifest.with_object(StoredObject(name, reader.size, reader.digest.hexdigest()))
        self._save(updated)
        return updated

    def manifests(self) -> list[Manifest]:
        """Every set's manifest, oldest first; a set without a readable manifest is skipped. An endpoint
        that fails meanwhile is an error: a list silently short of some sets would mislead retention."""
        with self._s3(f"list {self.dir}"):
            # One level only (the sets' folders): never the objects inside them, nor the binlog archive,
            # which grows with every interval.
            folders = [o.object_name or "" for o in self._client.list_objects(self.bucket, self.base + "/", False)
                       if o.is_dir]
        found = []
        for folder in folders:
            set_id = folder[len(self.base) + 1:].rstrip("/")
            if set_id != BINLOGS and _is_set_id(set_id) and (manifest := self._load(set_id)) is not None:
                found.append(manifest)
        return sorted(found, key=lambda m: m.started_at)

    def manifest(self, set_id: str) -> Manifest:
        found = self._load(set_id) if _is_set_id(set_id) else None
        if found is None or found.id != set_id:
            raise RepositoryError(f"no backup {set_id!r} in {self.dir}")
        return found

    def delete(self, set_id: str) -> None:
        """Every key under the set's prefix, its manifest last: a set half deleted is still listed."""
        self.manifest(set_id)  # refuses an unknown id
        prefix, bucket = self.key(set_id), self.bucket
        with self._s3(f"delete {self.dir}/{set_id}"):
            keys = [o.object_name or "" for o in self._client.list_objects(bucket, prefix, True)]
            objects = [DeleteObject(k) for k in keys if k != prefix + MANIFEST]
            errors = list(self._client.remove_objects(bucket, objects))
            if not errors:
                self._client.remove_object(bucket, prefix + MANIFEST)
        if errors:
            raise self._failure(f"delete {errors[0].name}", f"{errors[0].code}: {errors[0].message}")

    def open(self, manifest: Manifest, name: str) -> BinaryIO:
        """The object, streamed as it is read. No fileno, and on purpose no io.BufferedReader (what
        materialize.py takes for a local file to hand to a subprocess): it must be pumped in."""
        data = self._reader(self.key(manifest.id, name))
        if data is None:
            raise RepositoryError(f"no object {name!r} in {self.dir}/{manifest.id}")
        return data

    def verify(self, set_id: str) -> Verification:
        """Every object of the set read back and hashed against its manifest; nothing is trusted from the
        endpoint (not its ETags either) but the manifest itself."""
        return verify_objects(self.manifest(set_id), lambda name: self._reader(self.key(set_id, name)))

    def save(self, manifest: Manifest) -> None:
        """Rewrite the set's manifest (its position and checksums known, before the objects come)."""
        self._save(manifest)

    # ---- archived binlogs ------------------------------------------------------------------------------
    def store_binlog(self, record: ArchivedBinlog, stream: BinaryIO | Iterable[bytes]) -> ArchivedBinlog:
        """The object uploaded (a PUT replaces a key whole, so a re-store never shows half an object), then
        its record: a writer that dies between leaves an object without a record, which nothing lists."""
        object_name, record_name = binlog_names(record)
        key = f"{self.base}/{object_name}"
        reader = _Hashing(stream)
        with self._s3(f"write {key}"):
            self._client.put_object(self.bucket, key, cast(BinaryIO, reader), -1, part_size=self.part_size,
                                    num_parallel_uploads=1)
        filled = replace(record, object=object_name, size=reader.size, sha256=reader.digest.hexdigest())
        self._put_text(f"{self.base}/{record_name}", binlog_record_text(filled))
        return filled

    def binlogs(self) -> list[ArchivedBinlog]:
        """Every archived binlog's record, by node and file: one listing of the binlogs' prefix, then a GET
        of each record (not of the objects). An unreadable record is skipped; a failing endpoint is an error."""
        prefix = f"{self.base}/{BINLOGS}/"
        with self._s3(f"list {self.dir}/{BINLOGS}"):
            keys = [o.object_name or "" for o in self._client.list_objects(self.bucket, prefix, True)]
        found = []
        for key in (k for k in keys if k.endswith(".json")):
            if (data := self._reader(key)) is None:
                continue  # deleted since the listing
            with data:
                body = data.read()
            if (record := parse_binlog_record(body, key[len(self.base) + 1:])) is not None:
                found.append(record)
        return sorted(found, key=lambda r: (r.node, r.file))

    def open_binlog(self, record: ArchivedBinlog) -> BinaryIO:
        """The object, streamed as it is read (like `open`: no fileno)."""
        object_name = binlog_names(record)[0]
        if (data := self._reader(f"{self.base}/{object_name}")) is None:
            raise RepositoryError(f"no archived binlog {object_name!r} in {self.dir}")
        return data

    def delete_binlog(self, record: ArchivedBinlog) -> None:
        """The record, then the object (S3 deletes a missing key without complaint: a delete is redone)."""
        for name in reversed(binlog_names(record)):
            with self._s3(f"delete {self.base}/{name}"):
                self._client.remove_object(self.bucket, f"{self.base}/{name}")

    def verify_binlog(self, record: ArchivedBinlog) -> list[Problem]:
        return verify_binlog_object(record, self._reader(f"{self.base}/{binlog_names(record)[0]}"))

    # ---- the endpoint ----------------------------------------------------------------------------------
    def _save(self, manifest: Manifest) -> None:
        self._put_text(self.key(manifest.id, MANIFEST), json.dumps(manifest.to_dict(), indent=1) + "\n")

    def _put_text(self, key: str, text: str) -> None:
        """A JSON document in one PUT: atomic, so a reader sees the old one or the new one, whole."""
        body = text.encode()
        with self._s3(f"write {key}"):
            self._client.put_object(self.bucket, key, io.BytesIO(body), len(body), content_type="application/json")

    def _load(self, set_id: str) -> Manifest | None:
        """The set's manifest; None when it is missing or unreadable."""
        if (data := self._reader(self.key(set_id, MANIFEST))) is None:
            return None
        with data:
            body = data.read()
        try:
            return Manifest.from_dict(json.loads(body))
        except (ValueError, TypeError, AttributeError):
            return None

    def _reader(self, key: str) -> BinaryIO | None:
        """The object's body as a stream; None when there is no such key."""
        with self._s3(f"read {key}"):
            try:
                response = self._client.get_object(self.bucket, key)
            except S3Error as error:
                if error.code == "NoSuchKey":
                    return None
                raise
        return cast(BinaryIO, _Download(response, lambda e: self._failure(f"read {key}", _cause(e))))

    @contextmanager
    def _s3(self, what: str) -> Iterator[None]:
        try:
            yield
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as error:
            raise self._failure(what, _cause(error)) from None

    def _failure(self, what: str, cause: str) -> RepositoryError:
        line = " ".join(f"S3 {self.location.endpoint} bucket {self.bucket}: cannot {what}: {cause}".split())
        return RepositoryError(line if len(line) <= 400 else line[:397] + "...")


class _Hashing:
    """A stream (a file or chunks) that hashes and counts what is read, and answers read(n) with n bytes
    until its end, as minio's part reader wants: chunks joined once, the last split without a copy."""

    def __init__(self, stream: BinaryIO | Iterable[bytes]) -> None:
        reading = hasattr(stream, "read")
        self._chunks = iter(partial(cast(BinaryIO, stream).read, CHUNK), b"") if reading else iter(stream)
        self._held: list[bytes | memoryview] = []  # read ahead of the next read(n)
        self._count = 0
        self.digest, self.size = hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        while n < 0 or self._count < n:
            if (chunk := next(self._chunks, None)) is None:
                break
            self._held.append(chunk)
            self._count += len(chunk)
        over = self._count - n if 0 <= n < self._count else 0
        rest: memoryview | None = None
        if over:  # only the last chunk runs over (before it, fewer than n were held)
            last = memoryview(self._held[-1])
            self._held[-1], rest = last[:-over], last[-over:]
        data = b"".join(self._held)
        self._held, self._count = ([rest], over) if rest is not None else ([], 0)
        self.digest.update(data)
        self.size += len(data)
        return data


class _Download(io.RawIOBase):
    """A GET's body, read as it arrives: read(n) gives n bytes until the end (urllib3 fills them), and a
    connection broken mid-way is a RepositoryError, never a short object (urllib3 checks the length)."""

    def __init__(self, response: urllib3.BaseHTTPResponse, failure: Callable[[Exception], Exception]) -> None:
        self._response, self._failure = response, failure

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._response.read(None if size is None or size < 0 else size)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise self._failure(error) from None

    def readall(self) -> bytes:
        return self.read()

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._response.release_conn()
        super().close()


def _is_set_id(set_id: str) -> bool:
    try:
        check_set_id(set_id)
    except RepositoryError:
        return False
    return True


def _cause(error: BaseException) -> str:
    if isinstance(error, S3Error):
        return f"{_CAUSES.get(error.code or '', error.message or error.code)} ({error.code})"
    if isinstance(error, ServerError):
        return f"the server answered HTTP {error.status_code}"
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        error = error.reason
    if isinstance(error, urllib3.exceptions.ReadTimeoutError):
        return f"no answer within {READ_TIMEOUT:g} s"
    if isinstance(error, urllib3.exceptions.ConnectTimeoutError) and \
            not isinstance(error, urllib3.exceptions.NewConnectionError):  # that one carries an OSError
        return f"no connection within {CONNECT_TIMEOUT:g} s"
    if isinstance(error, urllib3.exceptions.SSLError):
        return f"TLS: {error}"
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror[:1].lower() + seen.strerror[1:]
        seen = seen.__cause__ or seen.__context__
    return str(error) or type(error).__name__
