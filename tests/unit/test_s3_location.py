"""The S3 repository's pure pieces: where its keys go, what its location accepts and shows, and where its
credentials may come from. No endpoint is contacted (tests/integration/test_s3_repository.py does that)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from galera_pilot.backup.repository import RepositoryError
from galera_pilot.backup.s3 import MIN_PART_SIZE, S3Location, S3Repository, _Hashing
from galera_pilot.backup.s3_credentials import load_s3_credentials

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzz"


def location(**changes: object) -> S3Location:
    values: dict[str, object] = {"endpoint": "http://127.0.0.1:8333", "bucket": "backups", "access_key": "AKIDTEST",
                                 "secret_key": SECRET}
    values.update(changes)
    return S3Location(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("prefix", "base"), [("", "alpha"), ("gp", "gp/alpha"), ("/gp/backups/", "gp/backups/alpha"),
                                              ("a/b", "a/b/alpha")])
def test_keys_are_prefix_cluster_set_object_without_a_leading_slash(prefix: str, base: str) -> None:
    repository = S3Repository(location(prefix=prefix), "alpha")
    assert repository.key("20261203-full", "data.mbstream.zst") == f"{base}/20261203-full/data.mbstream.zst"
    assert repository.key("20261203-full") == f"{base}/20261203-full/"
    assert repository.dir == f"s3://backups/{base}"


def test_location_defaults_and_what_the_scheme_tells() -> None:
    plain = location()
    assert (plain.region, plain.prefix, plain.ca_file, plain.secure, plain.host) == ("us-east-1", "", None, False,
                                                                                     "127.0.0.1:8333")
    secure = location(endpoint="https://s3.example.test", ca_file=Path("/etc/ca.pem"))
    assert secure.secure and secure.host == "s3.example.test"
    with pytest.raises(AttributeError):
        plain.bucket = "other"  # type: ignore[misc]  # frozen


@pytest.mark.parametrize("endpoint", ["127.0.0.1:8333", "ftp://host", "http://", "http://host/path", "http://host:x",
                                      "http://user:pw@host", "http://host?a=1", "http://host:0"])
def test_an_endpoint_that_is_no_http_url_is_refused(endpoint: str) -> None:
    with pytest.raises(RepositoryError, match="is not an http\\(s\\)://host\\[:port\\] URL"):
        location(endpoint=endpoint)


def test_a_ca_file_needs_https_and_a_bucket_a_valid_name() -> None:
    with pytest.raises(RepositoryError, match="a CA file needs an https:// endpoint"):
        location(ca_file=Path("/etc/ca.pem"))
    for bucket in ("ab", "Upper", "under_score", "x" * 64):
        with pytest.raises(RepositoryError, match=f"S3 bucket name '{bucket}' is not valid"):
            location(bucket=bucket)


def test_repr_and_str_hide_the_credentials() -> None:
    shown = location(prefix="gp")
    for text in (repr(shown), str(shown), repr(S3Repository(shown, "alpha").__dict__.get("location"))):
        assert SECRET not in text and "AKIDTEST" not in text, text
        assert "secret_key='<hidden>'" in text and "bucket='backups'" in text and "127.0.0.1:8333" in text


def test_a_repository_is_made_without_asking_the_endpoint_and_parts_have_s3s_floor() -> None:
    S3Repository(location(endpoint="http://192.0.2.1:9"), "alpha")  # TEST-NET: would hang if contacted
    with pytest.raises(ValueError, match="below S3's minimum"):
        S3Repository(location(), "alpha", part_size=MIN_PART_SIZE - 1)


def test_the_upload_reader_gives_exact_sizes_and_hashes_what_it_gave() -> None:
    rng = random.Random(7)
    for _ in range(200):
        chunks = [rng.randbytes(rng.randint(0, 40)) for _ in range(rng.randint(0, 12))]
        whole = b"".join(chunks)
        reader, got = _Hashing(iter(chunks) if rng.random() < 0.5 else _File(whole)), []
        while data := reader.read(n := rng.choice((1, 7, 33, 100))):
            assert isinstance(data, bytes) and (len(data) == n or not reader.read(1))
            got.append(data)
        assert b"".join(got) == whole and reader.size == len(whole)
        assert reader.digest.hexdigest() == hashlib.sha256(whole).hexdigest()


class _File:
    """A file-like stream that answers in short reads, as a pipe does."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, n: int = -1) -> bytes:
        n = min(n, 5) if n >= 0 else len(self.data)
        out, self.data = self.data[:n], self.data[n:]
        return out


def write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_credentials_from_a_private_yaml_file(tmp_path: Path) -> None:
    path = write(tmp_path / "s3.yaml", f"# for the backups\naccess_key: AKIDTEST\nsecret_key: '{SECRET}'\n", 0o600)
    assert load_s3_credentials(path, {"AWS_ACCESS_KEY_ID": "no", "AWS_SECRET_ACCESS_KEY": "no"}) == ("AKIDTEST",
                                                                                                      SECRET)


def test_credentials_in_plain_lines_that_are_no_yaml(tmp_path: Path) -> None:
    path = write(tmp_path / "s3", "access_key: AKIDTEST\nsecret_key: @b:c%d\n", 0o400)
    assert load_s3_credentials(path, {}) == ("AKIDTEST", "@b:c%d")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o601])
def test_a_credentials_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path / "s3.yaml", f"access_key: AKIDTEST\nsecret_key: {SECRET}\n", mode)
    with pytest.raises(RepositoryError, match=f"may be read by others \\(mode {mode:04o}\\): chmod 600 it") as caught:
        load_s3_credentials(path, {})
    assert SECRET not in str(caught.value)


def test_what_a_credentials_file_lacks_is_named_and_its_content_never_quoted(tmp_path: Path) -> None:
    cases = {"access_key: AKIDTEST\n": "have no secret_key$", "": "have no access_key and secret_key$",
             f"access_key: ''\nsecret_key: {SECRET}\n": "have no access_key$",
             "access_key: AKIDTEST\nsecret_key: 12345\n": "secret_key is not a string \\(quote it\\)",
             f"- {SECRET}\n": "have no access_key and secret_key$"}
    for number, (text, expected) in enumerate(cases.items()):
        path = write(tmp_path / f"s3-{number}.yaml", text, 0o600)
        with pytest.raises(RepositoryError, match=expected) as caught:
            load_s3_credentials(path, {})
        assert SECRET not in str(caught.value) and str(path) in str(caught.value)
    with pytest.raises(RepositoryError, match=r"cannot read S3 credentials .*/absent\.yaml: No such file"):
        load_s3_credentials(tmp_path / "absent.yaml", {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")
    binary.chmod(0o600)
    with pytest.raises(RepositoryError, match="are not UTF-8 text"):
        load_s3_credentials(binary, {})


def test_credentials_from_the_environment_without_a_file() -> None:
    environ = {"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": SECRET, "HOME": "/root"}
    assert load_s3_credentials(None, environ) == ("AKIDTEST", SECRET)
    with pytest.raises(RepositoryError, match=r"^no S3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not "
                                              r"set, and no credentials file given$"):
        load_s3_credentials(None, {})
    with pytest.raises(RepositoryError, match=r"^no S3 credentials: AWS_SECRET_ACCESS_KEY not set") as caught:
        load_s3_credentials(None, {"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": ""})
    assert SECRET not in str(caught.value)
