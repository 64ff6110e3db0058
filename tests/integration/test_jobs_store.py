"""The object stores: the local folder and S3 on a real SeaweedFS, the same contract; signed
URLs work until they expire and are refused when altered."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from stemserve.core.errors import InvalidOptionError
from stemserve.jobs.errors import JobNotFoundError, StoreUnavailableError
from stemserve.jobs.s3 import S3Config, S3Store
from stemserve.jobs.store import LocalStore

from tests.integration import test_jobs_support as support
from tests.integration.engines import ACCESS_KEY, SECRET_KEY
from tests.integration.test_jobs_support import unique

seaweed = support.seaweed  # the fixture, shared


def http(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def s3_store(s3, **overrides) -> S3Store:
    values = {"endpoint_url": s3.endpoint_url, "bucket": unique("stems-"), "access_key": ACCESS_KEY,
              "secret_key": SECRET_KEY}
    values.update(overrides)
    return S3Store(S3Config(**values))


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return s3_store(request.getfixturevalue("seaweed"))


def test_the_contract(store, tmp_path):
    data = bytes(range(256)) * 100
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    store.put_file("results/k/vocals.wav", source)
    store.put_bytes("results/k/result.json", b"{}")
    assert store.size("results/k/vocals.wav") == len(data)
    assert store.size("results/k/missing.wav") is None
    assert store.read("results/k/vocals.wav", 1000, 300) == data[1000:1300]
    store.get_file("results/k/vocals.wav", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    with pytest.raises(JobNotFoundError):
        store.get_file("results/k/missing.wav", tmp_path / "x")
    store.delete("results/k/vocals.wav")
    assert store.size("results/k/vocals.wav") is None
    with pytest.raises(InvalidOptionError):
        store.put_bytes("../escape", b"x")


def test_signed_urls_expire_and_cannot_be_forged(seaweed):
    store = s3_store(seaweed)
    store.put_bytes("results/k/drums.wav", b"drums")
    url = store.url_for("results/k/drums.wav", 300)
    assert http("GET", url) == (200, b"drums")
    assert http("GET", url.replace("drums.wav", "bass.wav"))[0] == 403  # another key, same signature
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query["X-Amz-Signature"] = ("0" if query["X-Amz-Signature"][0] != "0" else "1") + query["X-Amz-Signature"][1:]
    assert http("GET", urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query))))[0] == 403
    assert http("GET", f"{seaweed.endpoint_url}/{store.config.bucket}/results/k/drums.wav")[0] == 403  # unsigned
    put = store.upload_url("uploads/u1", 300)
    assert http("PUT", put, b"song bytes")[0] == 200
    assert store.read("uploads/u1", 0, 100) == b"song bytes"
    short = store.url_for("results/k/drums.wav", 1)
    time.sleep(2.2)
    status, body = http("GET", short)
    assert status == 403 and b"expired" in body


def test_s3_down_is_a_retryable_store_error(seaweed):
    store = S3Store(S3Config(endpoint_url="http://127.0.0.1:9", bucket="nobody-here", access_key=ACCESS_KEY,
                             secret_key=SECRET_KEY, attempts=1), create_bucket=False)
    with pytest.raises(StoreUnavailableError, match="expected to write results/k/x"):
        store.put_bytes("results/k/x", b"x")
    with pytest.raises(InvalidOptionError, match="bucket"):
        s3_store(seaweed).key_of_url("s3://other-bucket/a")
