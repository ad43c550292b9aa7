"""A versioned model registry: fitted models with their metadata, on a local directory or S3.

Layout under the root (a directory, or ``s3://bucket/prefix``)::

    <source>/<metric>/v000001/model.pkl   the pickled model (a GuardedModel, SeriesModel or EnsembleModel)
    <source>/<metric>/v000001/meta.json   series, model, members, train window, CV scores, library versions
    <source>/<metric>/tags/<tag>           a version number: e.g. ``partition-2026-11-20``, ``current``

Versions count up per series and are never overwritten. A tag names a version and can move. The version
served by default is the one tagged ``current`` (the trainer moves it only to a model trained on newer
data, so backfilling old days never replaces the served model), else the highest complete one. Names are
percent-encoded into path segments, so any source or metric name is safe.
"""

from __future__ import annotations

import json
import os
import pickle
import re
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


def default_root() -> str:
    """``$RHYTHM_MODEL_REGISTRY`` (a directory or ``s3://bucket/prefix``), default ``$RHYTHM_HOME/models``."""
    home = Path(os.environ.get("RHYTHM_HOME", ".rhythm")).resolve()
    return os.environ.get("RHYTHM_MODEL_REGISTRY", str(home / "models"))


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
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def children(self, prefix: str) -> list[str]:
        """The names one level below ``prefix`` (a 'directory' key ending in /)."""


class LocalStorage(Storage):
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: a reader never sees half a model

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def children(self, prefix: str) -> list[str]:
        d = self.root / prefix
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


class S3Storage(Storage):
    def __init__(self, bucket: str, prefix: str = "", client: Any = None):
        import boto3

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = client or boto3.client("s3")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

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
    def __init__(self, root: str | Path, s3_client: Any = None):
        root = str(root)
        if root.startswith("s3://"):
            bucket, _, prefix = root[len("s3://") :].partition("/")
            self.storage: Storage = S3Storage(bucket, prefix, s3_client)
        else:
            self.storage = LocalStorage(root)
        self.root = root

    @staticmethod
    def _series(source: str, metric: str) -> str:
        return f"{quote(source, safe='')}/{quote(metric, safe='')}/"

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
        existing = self.versions(source, metric)
        version = (existing[-1] + 1) if existing else 1
        meta = {**meta, "source": source, "metric": metric, "version": version, "libraries": library_versions()}
        base = f"{self._series(source, metric)}v{version:06d}/"
        self.storage.put(base + "model.pkl", pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        self.storage.put(base + "meta.json", json.dumps(meta, indent=2, default=str).encode())
        for tag in tags:
            self.tag(source, metric, tag, version)
        return ModelVersion(source, metric, version, meta)

    def tag(self, source: str, metric: str, tag: str, version: int) -> None:
        """Point ``tag`` at ``version`` (which must be complete)."""
        if not TAG_RE.match(tag):
            raise ValueError(f"a tag is letters, digits, '.', '_' and '-', not {tag!r}")
        self._resolve(source, metric, version)
        self.storage.put(f"{self._series(source, metric)}tags/{tag}", str(version).encode())

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
        return int(self.storage.get(f"{self._series(source, metric)}tags/{tag}").decode())

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
        model = pickle.loads(self.storage.get(f"{self._series(source, metric)}v{mv.version:06d}/model.pkl"))
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
