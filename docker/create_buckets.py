"""Create the buckets of the S3-compatible store (the one-shot `s3-init` service of Compose).

    python create_buckets.py BUCKET [BUCKET ...]

Credentials and endpoint come from boto3's own variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY). The store may still be starting: it retries for S3_INIT_TIMEOUT seconds
(default 120). Idempotent: a bucket that already exists is fine. Exit 0 when every bucket exists
and accepts a write, 1 otherwise (the MLflow server then does not start).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

EXISTING = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}
PROBE_KEY = ".s3-init-probe"


def ensure_bucket(client: Any, bucket: str) -> None:
    try:
        client.create_bucket(Bucket=bucket)
        print(f"bucket {bucket}: criado", flush=True)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in EXISTING:
            raise
        print(f"bucket {bucket}: já existia", flush=True)
    # A round trip proves the store can write, not only that it answers.
    client.put_object(Bucket=bucket, Key=PROBE_KEY, Body=b"ok")
    client.delete_object(Bucket=bucket, Key=PROBE_KEY)


def main(buckets: list[str]) -> int:
    if not buckets:
        print("uso: create_buckets.py BUCKET [BUCKET ...]", file=sys.stderr)
        return 2
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )
    deadline = time.monotonic() + float(os.environ.get("S3_INIT_TIMEOUT", "120"))
    pending = list(buckets)
    last_error = ""
    while pending:
        try:
            ensure_bucket(client, pending[0])
            pending.pop(0)
            continue
        except (BotoCoreError, ClientError) as error:
            last_error = str(error)
        if time.monotonic() > deadline:
            print(
                f"erro: o S3 em {endpoint or 'AWS'} não aceitou o bucket {pending[0]}: "
                f"{last_error}",
                file=sys.stderr,
            )
            return 1
        time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
