"""Shared fixtures: real S3-compatible servers for the publish/reader tests.

- `s3_root`: a fresh bucket on a moto server (one per session, started here) -> "s3://<bucket>/published".
- `ceph_root`: the same on the Ceph radosgw that `.ci/run` starts (`.ci/start_ceph.sh`, then
  `source .ci/ceph.env`). In CI (CI set) a missing server FAILS the `ceph` tests; locally without
  SEMREC_CEPH_ENDPOINT they are deselected.
- `browser` tests (headless Chromium) run in CI, and locally wherever Debian's chromium is installed.
Credentials reach the code only through the standard AWS environment variables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

CEPH_ENV = ("SEMREC_CEPH_ENDPOINT", "SEMREC_CEPH_ACCESS_KEY", "SEMREC_CEPH_SECRET_KEY")
CHROMIUM = "/usr/bin/chromium"  # Debian's, with chromium-driver: the `browser` tests' only browser


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CI"):
        return
    absent = {"ceph": not os.environ.get("SEMREC_CEPH_ENDPOINT"), "browser": not os.path.exists(CHROMIUM)}
    for marker in (name for name, missing in absent.items() if missing):
        deselected = [item for item in items if item.get_closest_marker(marker)]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if not item.get_closest_marker(marker)]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _bucket_root(monkeypatch: pytest.MonkeyPatch, endpoint: str, key: str, secret: str) -> str:
    import boto3

    for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
                        "AWS_DEFAULT_REGION": "us-east-1",
                        # pre-Squid radosgw rejects the CRC32 checksums newer botocore sends by default
                        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
                        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}.items():
        monkeypatch.setenv(name, value)
    bucket = f"semrec-test-{uuid.uuid4().hex[:12]}"
    boto3.session.Session().client("s3").create_bucket(Bucket=bucket)  # a fresh session reads the env again
    return f"s3://{bucket}/published"


@pytest.fixture
def s3_root(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    return _bucket_root(monkeypatch, moto_endpoint, "testing", "testing")


@pytest.fixture
def ceph_root(monkeypatch: pytest.MonkeyPatch) -> str:
    missing = [name for name in CEPH_ENV if not os.environ.get(name)]
    if missing:
        pytest.fail(f"CI is set but {missing} are not: .ci/run must start Ceph radosgw (.ci/start_ceph.sh) "
                    "and source .ci/ceph.env before the tests")
    return _bucket_root(monkeypatch, *(os.environ[name] for name in CEPH_ENV))



@pytest.fixture(scope="session")
def fixture_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from snapshot_fixture import write_inputs

    return write_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="session")
def published_root(fixture_inputs: dict, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local published tree holding one snapshot of the tiny catalog (read-only: copy before changing)."""
    root = str(tmp_path_factory.mktemp("published"))
    from snapshot_fixture import publish_tiny

    assert publish_tiny(fixture_inputs, root) == 0
    return root


@pytest.fixture(scope="session")
def ask_root(fixture_inputs: dict, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local published tree whose catalog "movies" is the tiny catalog shipped with an intent/ folder
    (gazetteer extractor), so `ask` works on it (read-only)."""
    root = str(tmp_path_factory.mktemp("published-ask"))
    from snapshot_fixture import publish_tiny, write_intent

    intent = write_intent(tmp_path_factory.mktemp("intent"))
    assert publish_tiny(fixture_inputs, root, "--intent", str(intent), catalog="movies") == 0
    return root
