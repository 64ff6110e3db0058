"""The object store on the S3 API (boto3): SeaweedFS in the tests, any S3 in production.

Path-style addressing and SigV4, short connect/read timeouts and a few standard retries per
call; a store that stays down raises StoreUnavailableError (retryable: the job's attempt is
retried later within its deadline). Large files go up in multipart uploads; an S3 object
appears only when its upload completes, so a reader never sees half a stem. Signed URLs
(GET for stems, PUT for CreateUpload) carry their expiry; the store refuses them once
expired or altered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stemserve.core.errors import InvalidOptionError
from stemserve.jobs.errors import JobNotFoundError, StoreUnavailableError
from stemserve.jobs.store import check_key

MULTIPART_THRESHOLD_BYTES = 16 * 1024**2


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    attempts: int = 3  # per call, botocore's standard retry mode

    def __post_init__(self) -> None:
        if not self.endpoint_url.startswith(("http://", "https://")):
            raise InvalidOptionError(f"s3_endpoint must be an http(s) URL, not {self.endpoint_url!r}")
        if len(self.bucket) < 3:
            raise InvalidOptionError(f"s3_bucket must be a bucket name of 3+ characters, not {self.bucket!r}")


class S3Store:
    kind = "s3"

    def __init__(self, config: S3Config, *, create_bucket: bool = True) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.config = config
        self.client = boto3.client(
            "s3", endpoint_url=config.endpoint_url, aws_access_key_id=config.access_key,
            aws_secret_access_key=config.secret_key, region_name=config.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": config.attempts, "mode": "standard"},
                          connect_timeout=2, read_timeout=10),
        )
        self._transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD_BYTES, use_threads=False)
        if create_bucket:
            self._call("create the bucket", self._ensure_bucket)

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.config.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.config.bucket)

    def _call(self, what: str, fn, *args, key: str | None = None, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise JobNotFoundError(f"object {key} does not exist in the store") from exc
            raise StoreUnavailableError(f"expected to {what} on S3 {self.config.endpoint_url}, got {code}: {exc}") from exc
        except (BotoCoreError, OSError) as exc:
            raise StoreUnavailableError(f"expected to {what} on S3 {self.config.endpoint_url}, got {exc}") from exc

    def put_file(self, key: str, path: Path) -> None:
        self._call(f"write {key}", self.client.upload_file, str(path), self.config.bucket, check_key(key),
                   Config=self._transfer, key=key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(f"write {key}", self.client.put_object, Bucket=self.config.bucket, Key=check_key(key), Body=data,
                   key=key)

    def get_file(self, key: str, destination: Path) -> None:
        self._call(f"read {key}", self.client.download_file, self.config.bucket, check_key(key), str(destination),
                   Config=self._transfer, key=key)

    def read(self, key: str, offset: int, length: int) -> bytes:
        answer = self._call(f"read {key}", self.client.get_object, Bucket=self.config.bucket, Key=check_key(key),
                            Range=f"bytes={offset}-{offset + length - 1}", key=key)
        return self._call(f"read {key}", answer["Body"].read, key=key)

    def size(self, key: str) -> int | None:
        try:
            head = self._call(f"look up {key}", self.client.head_object, Bucket=self.config.bucket,
                              Key=check_key(key), key=key)
        except JobNotFoundError:
            return None
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", self.client.delete_object, Bucket=self.config.bucket, Key=check_key(key), key=key)

    def url_for(self, key: str, expires_s: int) -> str:
        return self.client.generate_presigned_url("get_object", Params={"Bucket": self.config.bucket,
                                                                        "Key": check_key(key)}, ExpiresIn=expires_s)

    def upload_url(self, key: str, expires_s: int) -> str:
        return self.client.generate_presigned_url("put_object", Params={"Bucket": self.config.bucket,
                                                                        "Key": check_key(key)}, ExpiresIn=expires_s)

    def key_of_url(self, url: str) -> str | None:
        parts = urlsplit(url)
        if parts.scheme != "s3":
            return None
        if parts.netloc != self.config.bucket:
            raise InvalidOptionError(f"s3:// inputs must be in bucket {self.config.bucket!r}, not {parts.netloc!r}")
        return check_key(parts.path.lstrip("/"))
