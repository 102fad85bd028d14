"""Digests as the OCI image spec defines them: `algorithm:encoded`, validated at the boundary."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO

from workbench.errors import InvalidArgument

_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_HEX = {"sha256": 64, "sha512": 128}


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse and validate `sha256:<64 hex>`; raise InvalidArgument otherwise."""
        if not isinstance(text, str) or not _DIGEST_RE.match(text):
            raise InvalidArgument(f"invalid digest: {text!r}")
        algorithm, encoded = text.split(":", 1)
        want = _HEX.get(algorithm)
        if want is None:
            raise InvalidArgument(f"unsupported digest algorithm: {algorithm}")
        if len(encoded) != want or not re.fullmatch(r"[a-f0-9]+", encoded):
            raise InvalidArgument(f"invalid digest: {text!r}")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes) -> Digest:
        return cls("sha256", hashlib.sha256(data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    @property
    def hex(self) -> str:
        return self.encoded

    @property
    def short(self) -> str:
        return self.encoded[:12]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(text: str) -> bool:
    try:
        Digest.parse(text)
    except InvalidArgument:
        return False
    return True


class DigestMismatch(InvalidArgument):
    pass


class VerifyingReader:
    """Wrap a binary stream; hash everything read and check it at EOF against `expected`."""

    def __init__(self, raw: BinaryIO, expected: str, size: int | None = None) -> None:
        self._raw = raw
        self._expected = Digest.parse(expected)
        self._h = self._expected.hasher()
        self._size = size
        self._seen = 0
        self._done = False

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._h.update(data)
            self._seen += len(data)
        elif not self._done:
            self._done = True
            self.verify()
        return data

    def verify(self) -> None:
        got = f"{self._expected.algorithm}:{self._h.hexdigest()}"
        if self._size is not None and self._seen != self._size:
            raise DigestMismatch(f"size mismatch: expected {self._size}, got {self._seen}")
        if got != str(self._expected):
            raise DigestMismatch(f"digest mismatch: expected {self._expected}, got {got}")
