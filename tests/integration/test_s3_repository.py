"""The S3 backup repository against a real SeaweedFS S3 server on 127.0.0.228 (tests/integration/seaweedfs.py).

What must hold, as for LocalRepository:
- objects of unknown length larger than a part go up as multipart uploads in bounded parts (memory stays
  near a few parts, not the object), are hashed on the way, listed, read back byte-identical, verified;
- an object changed, truncated or removed behind the repository's back is named by verify;
- delete removes every key of the set; a set id is begun once; bad names are refused;
- archived binlogs: stored (sealed when encrypted) with their record last, listed from one listing, read
  back, verified, replaced, deleted, never seen by the sets' listing nor touched by a set's delete;
- every failure (bad credentials, no such bucket, a refused write, an endpoint that refuses or never
  answers, a certificate not trusted) is one RepositoryError naming endpoint and bucket, never a secret,
  in bounded time; https is verified with the configured CA file.
"""

from __future__ import annotations

import errno
import hashlib
import io
import random
import re
import socket
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from galera_pilot.backup.binlog_index import ArchivedBinlog
from galera_pilot.backup.encrypted import EncryptedRepository
from galera_pilot.backup.encryption import EncryptionError, generate_key_file, is_encrypted
from galera_pilot.backup.manifest import Manifest, Problem
from galera_pilot.backup.repository import RepositoryError
from galera_pilot.backup.s3 import S3Location, S3Repository
from galera_pilot.backup.s3_credentials import load_s3_credentials
from galera_pilot.tls.authority import Authority

from .conftest import test_address
from .seaweedfs import ACCESS_KEY, BUCKET, READER_ACCESS_KEY, READER_SECRET_KEY, SECRET_KEY, SeaweedFS, free_ports

pytestmark = pytest.mark.integration

ADDRESS = test_address("127.0.0.228")
PART = 5 << 20  # S3's smallest part: 40 MiB go up in 9 of them
MIB = 1 << 20


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory, _test_pki: Authority) -> Iterator[SeaweedFS]:
    """One server for the module, serving S3 over http and, with a certificate of the session's PKI, https."""
    base = tmp_path_factory.mktemp("seaweedfs")
    server = SeaweedFS(base, ADDRESS, tls=_test_pki.issue_bundle("seaweedfs", [ADDRESS], out=base / "tls"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def generated(seed: int, total: int, digest: hashlib._Hash | None = None) -> Iterator[bytes]:
    """`total` pseudo-random bytes in chunks of uneven sizes, made on the fly: a stream of unknown length."""
    rng = random.Random(seed)
    left = total
    while left:
        chunk = rng.randbytes(min(left, rng.randint(1, 3 * MIB)))
        if digest is not None:
            digest.update(chunk)
        left -= len(chunk)
        yield chunk


def new_set(set_id: str, started_at: float = 1000.0, cluster: str = "alpha") -> Manifest:
    return Manifest(id=set_id, kind="full", cluster=cluster, cluster_uuid="a1b2c3d4-0000", started_at=started_at)


def keys(seaweed: SeaweedFS, prefix: str) -> list[str]:
    return sorted(o.object_name or "" for o in seaweed.client().list_objects(BUCKET, prefix, recursive=True))


def read_hash(repository: S3Repository, manifest: Manifest, name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with repository.open(manifest, name) as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def test_multipart_store_list_read_back_and_verify(seaweed: SeaweedFS) -> None:
    repository = S3Repository(seaweed.location(prefix="/team/backups/"), "alpha", part_size=PART)
    assert repository.dir == f"s3://{BUCKET}/team/backups/alpha"
    manifest = repository.begin(new_set("20261203-full", started_at=2000.0))
    big, small = hashlib.sha256(), hashlib.sha256()
    big_size, small_size = 40 * MIB + 12345, 11 * MIB + 7
    peaks = []
    for name, seed, size, digest in (("data.mbstream.zst", 1, big_size, big), ("xtrabackup_info", 2, small_size,
                                                                               small)):
        tracemalloc.start()
        try:
            manifest = repository.store(manifest, name, generated(seed, size, digest))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    # A few parts in memory, whatever the object's size (here: a part read ahead, its copy, the one sent).
    assert max(peaks) < 4 * PART, [f"{p / MIB:.1f} MiB" for p in peaks]
    manifest = repository.store(manifest, "xtrabackup_checkpoints", io.BytesIO(b"backup_type = full-backuped\n"))
    manifest = repository.store(manifest, "empty", iter(()))
    assert [(o.name, o.size) for o in manifest.objects] == [
        ("data.mbstream.zst", big_size), ("xtrabackup_info", small_size), ("xtrabackup_checkpoints", 28),
        ("empty", 0)]
    assert manifest.objects[0].sha256 == big.hexdigest() and manifest.objects[1].sha256 == small.hexdigest()
    repository.finish(manifest, "complete", 2100.0)

    # The keys, and the multipart uploads the ETags tell of (S3's "<md5 of part md5s>-<part count>").
    prefix = "team/backups/alpha/20261203-full/"
    assert keys(seaweed, "team/") == [prefix + n for n in ("data.mbstream.zst", "empty", "manifest.json",
                                                           "xtrabackup_checkpoints", "xtrabackup_info")]
    assert seaweed.client().stat_object(BUCKET, prefix + "data.mbstream.zst").etag.endswith("-9")
    assert seaweed.client().stat_object(BUCKET, prefix + "xtrabackup_info").etag.endswith("-3")

    # Listing: oldest first by started_at; a folder without a manifest, and an unreadable one, skipped.
    earlier = repository.begin(new_set("b-earlier", started_at=1500.0))
    raw = seaweed.client()
    raw.put_object(BUCKET, "team/backups/alpha/c-garbled/manifest.json", io.BytesIO(b"{not json"), 9)
    raw.put_object(BUCKET, "team/backups/alpha/d-no-manifest/data", io.BytesIO(b"x"), 1)
    assert [m.id for m in repository.manifests()] == ["b-earlier", "20261203-full"]
    assert repository.manifest("20261203-full").status == "complete"
    assert repository.manifest("b-earlier") == earlier
    for bad in ("c-garbled", "d-no-manifest", "nothing", "../alpha"):
        with pytest.raises(RepositoryError, match=f"no backup '{bad}' in s3://{BUCKET}/team/backups/alpha$"):
            repository.manifest(bad)

    stored = repository.manifest("20261203-full")
    for item in stored.objects:
        assert read_hash(repository, stored, item.name) == (item.sha256, item.size), item.name
    with repository.open(stored, "xtrabackup_checkpoints") as data:
        # No fileno, so not an io.BufferedReader: materialize.py hands those to zstd as its stdin.
        assert not isinstance(data, io.BufferedReader)
        with pytest.raises(io.UnsupportedOperation):
            data.fileno()
        assert data.read(11) == b"backup_type" and data.read() == b" = full-backuped\n" and data.read(5) == b""
    with pytest.raises(RepositoryError, match="no object 'nope'"):
        repository.open(stored, "nope")
    result = repository.verify("20261203-full")
    assert result.ok and result.checked == 4, result


def test_verify_names_changed_truncated_and_missing_objects(seaweed: SeaweedFS) -> None:
    repository = S3Repository(seaweed.location(prefix="verify"), "alpha", part_size=PART)
    manifest = repository.begin(new_set("s1"))
    for number, name in enumerate(("changed", "truncated", "removed", "intact")):
        manifest = repository.store(manifest, name, generated(10 + number, 6 * MIB))
    repository.finish(manifest, "complete", 1100.0)
    raw = seaweed.client()
    same_size = bytearray(b"".join(generated(11, 6 * MIB)))
    same_size[3 * MIB] ^= 0xFF
    raw.put_object(BUCKET, "verify/alpha/s1/changed", io.BytesIO(bytes(same_size)), len(same_size))
    raw.put_object(BUCKET, "verify/alpha/s1/truncated", io.BytesIO(b"".join(generated(11, 6 * MIB))[:1000]), 1000)
    raw.remove_object(BUCKET, "verify/alpha/s1/removed")
    result = repository.verify("s1")
    assert result.checked == 3
    assert result.problems == (Problem("changed", "checksum differs from the manifest's"),
                               Problem("truncated", f"1000 bytes, the manifest says {6 * MIB}"),
                               Problem("removed", "missing"))

    running = repository.begin(new_set("s2"))
    repository.store(running, "data", generated(20, 100))
    assert repository.verify("s2").problems == (Problem("manifest.json", "the set is running, not complete"),)
    repository.fail_if_running("s2", "the agent was restarted", 1200.0)
    failed = repository.manifest("s2")
    assert (failed.status, failed.error, failed.finished_at) == ("failed", "the agent was restarted", 1200.0)
    repository.fail_if_running("s1", "must not touch a complete set", 1300.0)
    repository.fail_if_running("never-begun", "nothing to mark", 1300.0)
    assert repository.manifest("s1").status == "complete"


def test_delete_removes_every_key_of_the_set_only(seaweed: SeaweedFS) -> None:
    repository = S3Repository(seaweed.location(prefix="delete"), "alpha", part_size=PART)
    for set_id in ("gone", "kept", "gone2"):
        manifest = repository.begin(new_set(set_id))
        repository.finish(repository.store(manifest, "data", generated(30, 2 * MIB)), "complete", 1100.0)
    seaweed.client().put_object(BUCKET, "delete/alpha/gone/stray.part", io.BytesIO(b"left by a crash"), 15)
    repository.delete("gone")
    assert keys(seaweed, "delete/alpha/gone/") == []
    assert keys(seaweed, "delete/") == ["delete/alpha/gone2/data", "delete/alpha/gone2/manifest.json",
                                        "delete/alpha/kept/data", "delete/alpha/kept/manifest.json"]
    assert [m.id for m in repository.manifests()] == ["gone2", "kept"]  # same started_at: listing order
    with pytest.raises(RepositoryError, match="no backup 'gone' in"):
        repository.delete("gone")
    repository.begin(new_set("bare"))  # a manifest and nothing else
    repository.delete("bare")
    assert keys(seaweed, "delete/alpha/bare") == []


def test_refusals_of_ids_and_names(seaweed: SeaweedFS) -> None:
    repository = S3Repository(seaweed.location(prefix="refusals"), "alpha", part_size=PART)
    manifest = repository.begin(new_set("once"))
    with pytest.raises(RepositoryError, match=f"backup once already exists in s3://{BUCKET}/refusals/alpha"):
        repository.begin(new_set("once", started_at=5.0))
    assert repository.manifest("once") == manifest  # untouched
    repository.begin(new_set("once2"))  # a longer id is another set, not a clash of prefixes
    for bad in ("../escape", "", ".hidden", "a/b"):
        with pytest.raises(RepositoryError, match="is not a valid name"):
            repository.begin(new_set(bad))
    manifest = repository.store(manifest, "data", generated(40, 10))
    for bad in ("manifest.json", "../x", "a/b", ""):
        with pytest.raises(RepositoryError, match=r"object name .* is not valid"):
            repository.store(manifest, bad, generated(40, 10))
    with pytest.raises(RepositoryError, match="cannot write gp-backups/refusals/alpha/once/data: it exists"):
        repository.store(manifest, "data", generated(41, 10))
    assert keys(seaweed, "refusals/") == ["refusals/alpha/once/data", "refusals/alpha/once/manifest.json",
                                          "refusals/alpha/once2/manifest.json"]


def test_https_verified_with_the_ca_file(seaweed: SeaweedFS) -> None:
    assert seaweed.tls is not None
    tls = S3Location(endpoint=seaweed.https_endpoint, bucket=BUCKET, prefix="tls", access_key=ACCESS_KEY,
                     secret_key=SECRET_KEY, ca_file=seaweed.tls / "ca.pem")
    repository = S3Repository(tls, "alpha", part_size=PART)
    manifest = repository.begin(new_set("over-tls"))
    digest = hashlib.sha256()
    manifest = repository.finish(repository.store(manifest, "data", generated(60, 6 * MIB, digest)), "complete", 1.0)
    assert manifest.objects[0].sha256 == digest.hexdigest()
    assert repository.verify("over-tls").ok and keys(seaweed, "tls/") == ["tls/alpha/over-tls/data",
                                                                          "tls/alpha/over-tls/manifest.json"]
    untrusted = S3Repository(S3Location(endpoint=seaweed.https_endpoint, bucket=BUCKET, access_key=ACCESS_KEY,
                                        secret_key=SECRET_KEY), "alpha")  # certifi's CAs: not the test PKI's
    with pytest.raises(RepositoryError) as caught:
        untrusted.manifests()
    assert_one_clean_line(caught.value, seaweed.https_endpoint, BUCKET, "TLS: ", "CERTIFICATE_VERIFY_FAILED")


def assert_one_clean_line(error: RepositoryError, *expected: str) -> None:
    message = str(error)
    assert "\n" not in message and "Traceback" not in message, message
    for secret in (SECRET_KEY, READER_SECRET_KEY, "wrong-secret-123"):
        assert secret not in message, message
    for part in expected:
        assert part in message, message


def test_bad_credentials_and_missing_bucket(seaweed: SeaweedFS) -> None:
    wrong_secret = S3Repository(seaweed.location(secret_key="wrong-secret-123"), "alpha")
    with pytest.raises(RepositoryError) as caught:
        wrong_secret.manifests()
    assert_one_clean_line(caught.value, seaweed.endpoint, BUCKET, "secret key does not match")
    unknown = S3Repository(seaweed.location(access_key="nobody", secret_key="wrong-secret-123"), "alpha")
    with pytest.raises(RepositoryError) as caught:
        unknown.begin(new_set("x"))
    assert_one_clean_line(caught.value, seaweed.endpoint, BUCKET, "access key is not known")
    assert "wrong-secret-123" not in repr(unknown.location) and "nobody" not in repr(unknown.location)

    missing = S3Repository(seaweed.location(bucket="no-such-bucket"), "alpha")
    with pytest.raises(RepositoryError) as caught:
        missing.manifests()
    assert_one_clean_line(caught.value, seaweed.endpoint, "bucket no-such-bucket", "the bucket does not exist")
    with pytest.raises(RepositoryError) as caught:
        missing.store(new_set("x"), "data", generated(50, 10))  # SeaweedFS would make the bucket: told not to
    assert_one_clean_line(caught.value, "bucket no-such-bucket", "cannot write alpha/x/data", "does not exist")

    https = S3Location(endpoint=seaweed.endpoint.replace("http:", "https:"), bucket=BUCKET, access_key="k",
                       secret_key="x")
    wrong_scheme = S3Repository(https, "alpha")
    with pytest.raises(RepositoryError) as caught:
        wrong_scheme.manifests()
    assert_one_clean_line(caught.value, "https://", BUCKET, "TLS: ")


def test_a_write_refused_to_read_only_credentials(seaweed: SeaweedFS) -> None:
    reader = S3Repository(seaweed.location(prefix="readonly", access_key=READER_ACCESS_KEY,
                                           secret_key=READER_SECRET_KEY), "alpha")
    assert reader.manifests() == []  # it may read
    with pytest.raises(RepositoryError) as caught:
        reader.begin(new_set("r1"))
    assert_one_clean_line(caught.value, seaweed.endpoint, BUCKET, "cannot write readonly/alpha/r1/manifest.json",
                          "AccessDenied")
    assert keys(seaweed, "readonly/") == []


def silent_listener() -> tuple[socket.socket, int]:
    """A port that accepts connections (the kernel's backlog) and never answers: a hung server."""
    listener = socket.socket()
    listener.bind((ADDRESS, 0))
    listener.listen(16)
    return listener, listener.getsockname()[1]


def test_unreachable_and_silent_endpoints_fail_in_bounded_time() -> None:
    [closed_port] = free_ports(ADDRESS, 1)
    refused = S3Repository(S3Location(endpoint=f"http://{ADDRESS}:{closed_port}", bucket=BUCKET,
                                      access_key="k", secret_key="wrong-secret-123"), "alpha")
    for call in (refused.manifests, lambda: refused.begin(new_set("x")), lambda: refused.verify("x"),
                 refused.binlogs):
        started = time.monotonic()
        with pytest.raises(RepositoryError) as caught:
            call()
        assert time.monotonic() - started < 60
        assert_one_clean_line(caught.value, f"{ADDRESS}:{closed_port}", BUCKET, "connection refused")

    listener, port = silent_listener()
    try:
        silent = S3Repository(S3Location(endpoint=f"http://{ADDRESS}:{port}", bucket=BUCKET, access_key="k",
                                         secret_key="wrong-secret-123"), "alpha")
        started = time.monotonic()
        with pytest.raises(RepositoryError) as caught:
            silent.manifests()
        assert time.monotonic() - started < 60
        assert_one_clean_line(caught.value, f"{ADDRESS}:{port}", BUCKET, "no answer within")
    finally:
        listener.close()


def test_credentials_from_a_private_file_or_the_environment(seaweed: SeaweedFS, tmp_path: Path) -> None:
    path = tmp_path / "s3.yaml"
    path.write_text(f"access_key: {READER_ACCESS_KEY}\nsecret_key: {READER_SECRET_KEY}\n")
    path.chmod(0o600)
    access, secret = load_s3_credentials(path, {"AWS_ACCESS_KEY_ID": "ignored", "AWS_SECRET_ACCESS_KEY": "x"})
    assert (access, secret) == (READER_ACCESS_KEY, READER_SECRET_KEY)
    S3Repository(seaweed.location(access_key=access, secret_key=secret), "alpha").manifests()  # accepted
    path.chmod(0o644)
    with pytest.raises(RepositoryError, match=r"may be read by others \(mode 0644\): chmod 600 it") as caught:
        load_s3_credentials(path, {})
    assert_one_clean_line(caught.value, str(path))
    environ = {"AWS_ACCESS_KEY_ID": READER_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": READER_SECRET_KEY}
    assert load_s3_credentials(None, environ) == (READER_ACCESS_KEY, READER_SECRET_KEY)
    with pytest.raises(RepositoryError, match="AWS_SECRET_ACCESS_KEY not set"):
        load_s3_credentials(None, {"AWS_ACCESS_KEY_ID": READER_ACCESS_KEY})


def binlog(node: str, file: str, last_seqno: int = 20) -> ArchivedBinlog:
    return ArchivedBinlog(node=node, file=file, object="", domain=0, server=1, first_seqno=10, last_seqno=last_seqno,
                          first_time=1000, last_time=1005, seconds=((1000, 12), (1005, last_seqno)))


def read_binlog(repository: S3Repository | EncryptedRepository, record: ArchivedBinlog) -> bytes:
    with repository.open_binlog(record) as data:
        return data.read()


def test_binlogs_stored_listed_read_back_verified_replaced_and_deleted(seaweed: SeaweedFS) -> None:
    repository = S3Repository(seaweed.location(prefix="pitr"), "alpha", part_size=PART)
    backup = repository.begin(new_set("s1"))
    backup = repository.finish(repository.store(backup, "data", generated(70, 100)), "complete", 1100.0)
    digest = hashlib.sha256()
    big = repository.store_binlog(binlog("node1", "mariadb-bin.000012"), generated(71, 12 * MIB, digest))
    small = repository.store_binlog(binlog("node0", "mariadb-bin.000003"), io.BytesIO(b"compressed binlog"))
    assert (big.object, big.size, big.sha256) == ("binlogs/node1/mariadb-bin.000012.zst", 12 * MIB,
                                                  digest.hexdigest())
    assert seaweed.client().stat_object(BUCKET, "pitr/alpha/" + big.object).etag.endswith("-3")  # in parts
    assert keys(seaweed, "pitr/alpha/binlogs/") == [f"pitr/alpha/binlogs/{n}" for n in (
        "node0/mariadb-bin.000003.json", "node0/mariadb-bin.000003.zst", "node1/mariadb-bin.000012.json",
        "node1/mariadb-bin.000012.zst")]
    assert repository.binlogs() == [small, big]
    assert read_binlog(repository, small) == b"compressed binlog"
    assert hashlib.sha256(read_binlog(repository, big)).hexdigest() == big.sha256
    assert repository.verify_binlog(big) == [] and repository.verify_binlog(small) == []

    # The sets' listing and a set's delete never see the binlogs.
    assert repository.manifests() == [backup]
    with pytest.raises(RepositoryError, match="no backup 'binlogs' in"):
        repository.delete("binlogs")
    with pytest.raises(RepositoryError, match="backup id 'binlogs' is not a valid name"):
        repository.begin(new_set("binlogs"))
    repository.delete("s1")
    assert repository.manifests() == [] and repository.binlogs() == [small, big]

    # Stored again (an archiver that died before its record): both replaced.
    again = repository.store_binlog(binlog("node0", "mariadb-bin.000003", last_seqno=30), iter([b"longer binlog"]))
    assert repository.binlogs() == [again, big] and read_binlog(repository, again) == b"longer binlog"

    # Behind the repository's back: an unreadable record is skipped, changed objects are named.
    raw = seaweed.client()
    raw.put_object(BUCKET, "pitr/alpha/binlogs/node2/garbled.json", io.BytesIO(b"{not json"), 9)
    assert repository.binlogs() == [again, big]
    raw.put_object(BUCKET, "pitr/alpha/" + again.object, io.BytesIO(b"longer binlOg"), 13)
    assert repository.verify_binlog(again) == [Problem(again.object, "checksum differs from the record's")]
    raw.remove_object(BUCKET, "pitr/alpha/" + again.object)
    assert repository.verify_binlog(again) == [Problem(again.object, "missing")]
    with pytest.raises(RepositoryError, match=re.escape("no archived binlog 'binlogs/node0/mariadb-bin.000003.zst' in s3://")):
        repository.open_binlog(again)

    # Deleted: the record, then the object; a delete redone is no error.
    repository.delete_binlog(big)
    repository.delete_binlog(big)
    assert repository.binlogs() == [again] and keys(seaweed, "pitr/alpha/binlogs/node1") == []
    with pytest.raises(RepositoryError, match=re.escape("node name '../alpha' is not valid")):
        repository.store_binlog(binlog("../alpha", "f"), iter([b"x"]))


def test_a_binlog_upload_that_fails_leaves_no_record(seaweed: SeaweedFS) -> None:
    def dying() -> Iterator[bytes]:
        yield from generated(80, 7 * MIB)  # past the first part: a multipart upload begun, then aborted
        raise OSError(errno.EPIPE, "Broken pipe")

    repository = S3Repository(seaweed.location(prefix="pitr-fail"), "alpha", part_size=PART)
    with pytest.raises(RepositoryError) as caught:
        repository.store_binlog(binlog("node1", "mariadb-bin.000001"), dying())
    assert_one_clean_line(caught.value, seaweed.endpoint, BUCKET, "cannot write pitr-fail/alpha/binlogs/node1/",
                          "broken pipe")
    assert repository.binlogs() == [] and keys(seaweed, "pitr-fail/") == []


def test_encrypted_binlogs_over_s3(seaweed: SeaweedFS, tmp_path: Path) -> None:
    key = generate_key_file(tmp_path / "backup.key")
    inner = S3Repository(seaweed.location(prefix="pitr-sealed"), "alpha", part_size=PART)
    repository = EncryptedRepository(inner, key)
    plain = b"".join(generated(90, 6 * MIB))
    record = repository.store_binlog(binlog("node1", "mariadb-bin.000007"), iter([plain]))
    stored = seaweed.client().get_object(BUCKET, "pitr-sealed/alpha/" + record.object).read()
    assert record.key_id == key.key_id and is_encrypted(stored[:16]) and plain[:64] not in stored
    assert (record.size, record.sha256) == (len(stored), hashlib.sha256(stored).hexdigest())
    assert repository.binlogs() == [record] and read_binlog(repository, record) == plain
    keyless = EncryptedRepository(inner, None)
    assert keyless.binlogs() == [record] and keyless.verify_binlog(record) == []  # no key needed
    with pytest.raises(EncryptionError, match=f"encrypted \\(key {key.key_id}\\): this host has no key"):
        keyless.open_binlog(record)
    other = EncryptedRepository(inner, generate_key_file(tmp_path / "other.key"))
    with pytest.raises(EncryptionError, match=re.escape(f"archived binlog node1/mariadb-bin.000007 is encrypted "
                                                        f"with key {key.key_id}; the key configured here is")):
        other.open_binlog(record)
    repository.delete_binlog(record)
    assert keys(seaweed, "pitr-sealed/") == []
