"""A versioned model registry: fitted models with their metadata, on a local directory or S3.

Layout under the root (a directory, or ``s3://bucket/prefix``)::

    <source>/<metric>/v000001/model.pkl   the pickled model (a GuardedModel, SeriesModel or EnsembleModel)
    <source>/<metric>/v000001/meta.json   series, model, members, train window, CV scores, library versions
    <source>/<metric>/tags/<tag>           a version number: e.g. ``partition-2026-11-20``, ``current``

Versions count up per series and are never overwritten. A tag names a version and can move. The version
served by default is the one tagged ``current`` (the trainer moves it only to a model trained on newer
data, so backfilling old days never replaces the served model), else the highest complete one. Names are
percent-encoded into path segments (dots too where a segment would be ``.`` or ``..``), and every local
path is checked to lie strictly inside the root, so no source or metric name can leave it.

Trust: ``model.pkl`` is a pickle, and unpickling runs code. Every version's ``meta.json`` holds the
SHA-256 of its model file and names its series and version; a file that does not match, or metadata
naming another series, is never unpickled (a torn, swapped or moved file). That does not stop someone who
can write both files; with a key (``$RHYTHM_MODEL_HMAC_KEY``, or ``hmac_key=``) each version's whole
metadata (digest included) carries an HMAC-SHA256, and so does each tag, and a registry opened with the
key loads only versions and follows only tags signed with it: a writer without the key cannot plant a
model, edit its metadata, move it, or point a tag elsewhere (replaying an older signed tag file, a
rollback to a model that was once served, remains possible). A signed version met by a registry without
the key is refused, so a lost secret is noticed. Use a key for any registry that others can write (S3).

Versions are claimed atomically: the model file is created exclusively (``link`` onto a fresh name
locally, ``If-None-Match: *`` on S3), so two trainings never take the same version.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle  # noqa: S403  models are pickles; loading is gated by a digest and optional HMAC (module doc)
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

VERSION_RE = re.compile(r"^v(\d{6})$")
CURRENT = "current"
TAG_RE = re.compile(r"^[A-Za-z0-9._-]+$")


HMAC_ENV = "RHYTHM_MODEL_HMAC_KEY"


class IntegrityError(RuntimeError):
    """A model file that does not match its version's digest or signature: it is never unpickled."""


def default_root() -> str:
    """``$RHYTHM_MODEL_REGISTRY`` (a directory or ``s3://bucket/prefix``), default ``$RHYTHM_HOME/models``."""
    from rhythm_pipelines.home import rhythm_home

    return os.environ.get("RHYTHM_MODEL_REGISTRY", str(rhythm_home() / "models"))


def segment(name: str) -> str:
    """A source or metric name as one path segment: percent-encoded, never empty, ``.``, ``..`` or hidden
    (a leading dot is encoded too, so the registry's own staging files never clash with a name)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a registry name must be a non-empty string, not {name!r}")
    seg = quote(name, safe="")
    return "%2E" + seg[1:] if seg.startswith(".") else seg


def signature(key: bytes, *parts: Any) -> str:
    """HMAC-SHA256 of ``parts`` as canonical JSON (a version's whole metadata; a tag and its target)."""
    msg = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def _signed_part(meta: dict) -> dict:
    """The metadata a signature covers: all of it but the signature, as JSON stores it."""
    return json.loads(json.dumps({k: v for k, v in meta.items() if k != "artifact_hmac"}, default=str))


def library_versions() -> dict[str, str]:
    out = {}
    for lib in ("statsforecast", "numpy", "pandas", "rhythm_pipelines"):
        try:
            out[lib] = _version(lib)
        except Exception:  # not installed as a distribution (e.g. a source checkout)
            out[lib] = "unknown"
    return out


class Storage(ABC):
    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def create(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist, atomically; False if it already did."""

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def children(self, prefix: str) -> list[str]:
        """The names one level below ``prefix`` (a 'directory' key ending in /)."""


class LocalStorage(Storage):
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        """``key`` under the root; anything that would resolve outside it (or to it) is refused."""
        path = (self.root / key).resolve()
        if path == self.root and key.strip("/") == "":
            return path
        if self.root not in path.parents:
            raise ValueError(f"registry key {key!r} leaves the registry root {self.root}")
        return path

    def _staged(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return Path(tmp)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self._staged(path, data).replace(path)  # atomic: a reader never sees half a file

    def create(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        tmp = self._staged(path, data)
        try:
            os.link(tmp, path)  # fails if the name exists: exclusive and whole, like O_EXCL on a full file
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink()

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def children(self, prefix: str) -> list[str]:
        d = self._path(prefix)
        return sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) if d.is_dir() else []


class S3Storage(Storage):
    def __init__(self, bucket: str, prefix: str = "", client: Any = None):
        import boto3

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = client or boto3.client("s3")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def create(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        try:  # a conditional write: S3 refuses it (412) when the key exists
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def children(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        names = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full, Delimiter="/"
        ):
            for p in page.get("CommonPrefixes", []):
                names.add(p["Prefix"][len(full) :].strip("/"))
            for o in page.get("Contents", []):
                names.add(o["Key"][len(full) :])
        return sorted(names)


@dataclass(frozen=True)
class ModelVersion:
    source: str
    metric: str
    version: int
    meta: dict


def _train_end(mv: ModelVersion) -> datetime:
    return datetime.fromisoformat(str(mv.meta.get("train_end") or "0001-01-01T00:00:00+00:00"))


class ModelRegistry:
    """Versions of fitted models per (source, metric). ``hmac_key``: None reads ``$RHYTHM_MODEL_HMAC_KEY``;
    ``b""`` means no key (digests are still checked)."""

    def __init__(self, root: str | Path, s3_client: Any = None, hmac_key: bytes | str | None = None):
        root = str(root)
        if root.startswith("s3://"):
            bucket, _, prefix = root[len("s3://") :].partition("/")
            self.storage: Storage = S3Storage(bucket, prefix, s3_client)
        else:
            self.storage = LocalStorage(root)
        self.root = root
        key = os.environ.get(HMAC_ENV, "") if hmac_key is None else hmac_key
        self._key: bytes = key.encode() if isinstance(key, str) else bytes(key)

    @property
    def signed(self) -> bool:
        return bool(self._key)

    @staticmethod
    def _series(source: str, metric: str) -> str:
        return f"{segment(source)}/{segment(metric)}/"

    def versions(self, source: str, metric: str) -> list[int]:
        names = self.storage.children(self._series(source, metric))
        return sorted(int(m.group(1)) for n in names if (m := VERSION_RE.match(n)))

    def series(self) -> list[tuple[str, str]]:
        """Every (source, metric) with at least one version."""
        out = []
        for s in self.storage.children(""):
            for m in self.storage.children(f"{s}/"):
                out.append((unquote(s), unquote(m)))
        return out

    def save(self, source: str, metric: str, model: Any, meta: dict, tags: Sequence[str] = ()) -> ModelVersion:
        """Store a new version (the model first, then its metadata: a version is complete once meta exists),
        then point ``tags`` at it."""
        data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        digest = hashlib.sha256(data).hexdigest()
        existing = self.versions(source, metric)
        version = (existing[-1] + 1) if existing else 1
        while not self.storage.create(f"{self._series(source, metric)}v{version:06d}/model.pkl", data):
            version += 1  # another training claimed it first
        meta = {**meta, "source": source, "metric": metric, "version": version, "libraries": library_versions()}
        meta["artifact_sha256"] = digest
        if self._key:  # the whole metadata: series, version, digest, training window, CV scores
            meta["artifact_hmac"] = signature(self._key, _signed_part(meta))
        base = f"{self._series(source, metric)}v{version:06d}/"
        self.storage.put(base + "meta.json", json.dumps(meta, indent=2, default=str).encode())
        for tag in tags:
            self.tag(source, metric, tag, version)
        return ModelVersion(source, metric, version, meta)

    def tag(self, source: str, metric: str, tag: str, version: int) -> None:
        """Point ``tag`` at ``version`` (which must be complete)."""
        if not TAG_RE.match(tag):
            raise ValueError(f"a tag is letters, digits, '.', '_' and '-', not {tag!r}")
        self._resolve(source, metric, version)
        body: dict[str, Any] = {"version": int(version)}
        if self._key:
            body["hmac"] = signature(self._key, "tag", source, metric, tag, int(version))
        self.storage.put(f"{self._series(source, metric)}tags/{tag}", json.dumps(body).encode())

    def promote(self, source: str, metric: str, version: int) -> bool:
        """Tag ``version`` current unless the current one was trained on newer data; True if it moved."""
        new = self.meta(source, metric, version)
        cur = self.tagged(source, metric, CURRENT)
        if cur is not None and cur != version:
            old = self.meta(source, metric, cur)
            if _train_end(old) > _train_end(new):
                return False
        self.tag(source, metric, CURRENT, version)
        return True

    def tagged(self, source: str, metric: str, tag: str) -> int | None:
        """The version ``tag`` points at, or None."""
        if tag not in self.storage.children(f"{self._series(source, metric)}tags/"):
            return None
        raw = self.storage.get(f"{self._series(source, metric)}tags/{tag}").decode()
        body = json.loads(raw) if raw.lstrip().startswith("{") else {"version": int(raw)}  # plain: before signing
        version = int(body["version"])
        if self._key:
            want = signature(self._key, "tag", source, metric, tag, version)
            if not isinstance(body.get("hmac"), str) or not hmac.compare_digest(body["hmac"], want):
                raise IntegrityError(f"{self.root} {source!r} {metric!r}: tag {tag!r} is not signed with this key")
        return version

    def _is_complete(self, source: str, metric: str, version: int) -> bool:
        return "meta.json" in self.storage.children(f"{self._series(source, metric)}v{version:06d}/")

    def meta(self, source: str, metric: str, version: int | None = None, tag: str | None = None) -> ModelVersion:
        if tag is not None:
            version = self.tagged(source, metric, tag)
            if version is None:
                raise LookupError(f"no model tagged {tag!r} in the registry {self.root} for {source!r} {metric!r}")
        elif version is None:
            version = self.tagged(source, metric, CURRENT)
        version = self._resolve(source, metric, version)
        raw = self.storage.get(f"{self._series(source, metric)}v{version:06d}/meta.json")
        return ModelVersion(source, metric, version, json.loads(raw))

    def load(
        self, source: str, metric: str, version: int | None = None, tag: str | None = None
    ) -> tuple[Any, ModelVersion]:
        """The model and its metadata: a version, a tagged one, or the served one (see module doc)."""
        mv = self.meta(source, metric, version, tag)
        where = f"{self.root} {source!r} {metric!r} v{mv.version}"
        data = self.storage.get(f"{self._series(source, metric)}v{mv.version:06d}/model.pkl")
        expected = mv.meta.get("artifact_sha256")
        claimed = (mv.meta.get("source"), mv.meta.get("metric"), mv.meta.get("version"))
        if claimed != (source, metric, mv.version):
            raise IntegrityError(f"{where}: its metadata names {claimed}, not this series and version")
        if not isinstance(expected, str):
            raise IntegrityError(f"{where}: no artifact_sha256 in its metadata (saved before digests): retrain it")
        digest = hashlib.sha256(data).hexdigest()
        if not hmac.compare_digest(digest, expected):
            raise IntegrityError(f"{where}: model.pkl does not match its SHA-256 ({digest[:12]}… != {expected[:12]}…)")
        if self._key:
            sig = mv.meta.get("artifact_hmac")
            want = signature(self._key, _signed_part(mv.meta))
            if not isinstance(sig, str) or not hmac.compare_digest(sig, want):
                raise IntegrityError(f"{where}: not signed with this registry's key ({HMAC_ENV}): refused")
        elif "artifact_hmac" in mv.meta:  # a lost secret must not turn verification off without a word
            raise IntegrityError(f"{where}: the model is signed but this registry has no key: set {HMAC_ENV}")
        model = pickle.loads(data)  # noqa: S301  digest (and signature, with a key) checked just above
        return model, mv

    def _resolve(self, source: str, metric: str, version: int | None) -> int:
        """The requested version, or the newest complete one (listing versions from the newest down)."""
        versions = self.versions(source, metric)
        if version is None:
            for v in reversed(versions):
                if self._is_complete(source, metric, v):
                    return v
            raise LookupError(f"no model in the registry {self.root} for source {source!r}, metric {metric!r}")
        if version not in versions or not self._is_complete(source, metric, version):
            complete = [v for v in versions if self._is_complete(source, metric, v)]
            if not complete:
                raise LookupError(f"no model in the registry {self.root} for source {source!r}, metric {metric!r}")
            raise LookupError(f"no version {version} of {source!r} {metric!r} in {self.root} (have {complete})")
        return version
