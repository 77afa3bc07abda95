"""Local and S3 I/O for input files. S3-compatible endpoints come from AWS_ENDPOINT_URL."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from passos_magicos.data.schema import DataFormatError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_INPUT_BYTES = 200 * 1024 * 1024  # a PEDE file is a few MB; refuse anything absurd


@dataclass(frozen=True)
class SourceFile:
    """An input file read fully into memory, with its content digest."""

    uri: str
    name: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def is_s3_uri(uri: str) -> bool:
    return uri.startswith("s3://")


def s3_client() -> S3Client:
    import boto3

    # boto3 reads AWS_ENDPOINT_URL itself; passing it explicitly also covers older botocore.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint or None)


def split_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise DataFormatError(f"URI S3 inválida: {uri!r} (esperado s3://bucket/caminho/arquivo)")
    return bucket, key


def read_source(uri: str) -> SourceFile:
    """Read a local path or s3:// URI; errors name the file and the reason, in pt-BR."""
    if is_s3_uri(uri):
        return _read_s3(uri)
    path = Path(uri).expanduser()
    if not path.exists():
        raise DataFormatError(f"arquivo não encontrado: {uri}")
    if path.is_dir():
        raise DataFormatError(f"{uri} é uma pasta; informe o arquivo (CSV ou XLSX)")
    size = path.stat().st_size
    if size > MAX_INPUT_BYTES:
        raise DataFormatError(f"{uri}: {size} bytes, acima do limite de {MAX_INPUT_BYTES} bytes")
    return SourceFile(uri=uri, name=path.name, content=path.read_bytes())


def _read_s3(uri: str) -> SourceFile:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3_uri(uri)
    try:
        response = s3_client().get_object(Bucket=bucket, Key=key)
        if response.get("ContentLength", 0) > MAX_INPUT_BYTES:
            raise DataFormatError(f"{uri}: acima do limite de {MAX_INPUT_BYTES} bytes")
        content = response["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise DataFormatError(f"não foi possível ler {uri} do S3 ({code})") from exc
    except BotoCoreError as exc:
        raise DataFormatError(f"não foi possível ler {uri} do S3: {exc}") from exc
    return SourceFile(uri=uri, name=Path(key).name, content=content)


def write_s3(uri: str, content: bytes) -> None:
    bucket, key = split_s3_uri(uri)
    s3_client().put_object(Bucket=bucket, Key=key, Body=content)


def combined_digest(files: list[SourceFile]) -> str:
    """One digest for a set of input files, independent of the order they were given in."""
    digest = hashlib.sha256()
    for file_digest in sorted(f.sha256 for f in files):
        digest.update(file_digest.encode())
    return digest.hexdigest()
