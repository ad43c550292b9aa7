"""The price catalog: per channel (and optionally per region) token and call prices, rate limits and a
quality tier; request classes and which channels may serve them. Shipped as ``configs/price_catalog.yaml``;
a user file (``$RHYTHM_PRICE_CATALOG`` or ``--catalog``) replaces it. Errors name the file, line and field.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.yaml_lines import ConfigError, Reader, config_text, keys, plain

DEFAULT_CLASS = "default"


class CatalogError(ConfigError):
    """A price catalog that cannot be used: ``origin:line: path: reason``."""


@dataclass(frozen=True)
class Price:
    input_per_1k: float
    output_per_1k: float
    per_call: float = 0.0
    quality: int = 0
    requests_per_minute: float | None = None  # per deployment (a channel in a region); None: unlimited
    tokens_per_minute: float | None = None

    def cost(self, tokens_in, tokens_out):
        """The price of calls with these token counts (scalars or arrays)."""
        return (
            self.per_call
            + np.asarray(tokens_in) / 1000 * self.input_per_1k
            + (np.asarray(tokens_out) / 1000 * self.output_per_1k)
        )


@dataclass(frozen=True)
class RequestClass:
    name: str
    min_quality: int | None = None
    channels: tuple[str, ...] | None = None

    def allows(self, channel: str, price: Price) -> bool:
        if self.channels is not None:
            return channel in self.channels
        return price.quality >= (self.min_quality or 0)


@dataclass(frozen=True)
class Catalog:
    channels: dict[str, Price]
    classes: dict[str, RequestClass]
    regional: dict[tuple[str, str], Price]
    currency: str = "USD"
    mismatch_tolerance: float = 0.01
    origin: str = "<catalog>"

    def price(self, channel: str, region: str | None = None) -> Price | None:
        if region is not None and (channel, region) in self.regional:
            return self.regional[(channel, region)]
        return self.channels.get(channel)

    def class_of(self, task: str | None) -> str:
        return task if isinstance(task, str) and task in self.classes else DEFAULT_CLASS

    def allows(self, cls: str, channel: str, region: str | None = None) -> bool:
        price = self.price(channel, region)
        return price is not None and self.classes[self.class_of(cls)].allows(channel, price)

    def price_calls(self, calls: pd.DataFrame) -> pd.DataFrame:
        """The calls with ``catalog_cost``, ``cost`` (logged, else the catalog's), ``cost_source``
        (logged, catalog or unpriced), ``cost_mismatch`` (logged cost off the catalog) and ``cls``."""
        out = calls.copy()
        catalog_cost = np.full(len(out), np.nan)
        tin = pd.to_numeric(out["tokens_in"], errors="coerce").fillna(0).to_numpy(dtype=float)
        tout = pd.to_numeric(out["tokens_out"], errors="coerce").fillna(0).to_numpy(dtype=float)
        for (channel, region), idx in out.groupby(["channel", "region"], sort=False).indices.items():
            price = self.price(channel, region)
            if price is not None:
                catalog_cost[idx] = price.cost(tin[idx], tout[idx])
        logged = pd.to_numeric(out["cost_usd"], errors="coerce").to_numpy(dtype=float)
        has_logged = ~np.isnan(logged)
        out["catalog_cost"] = catalog_cost
        out["cost"] = np.where(has_logged, logged, catalog_cost)
        out["cost_source"] = np.where(has_logged, "logged", np.where(np.isnan(catalog_cost), "unpriced", "catalog"))
        off = np.abs(logged - catalog_cost) > np.maximum(self.mismatch_tolerance * np.abs(catalog_cost), 1e-6)
        out["cost_mismatch"] = has_logged & ~np.isnan(catalog_cost) & off
        task = out["task"] if "task" in out.columns else pd.Series([None] * len(out), index=out.index)
        known = task.isin(list(self.classes))
        out["cls"] = task.where(known, DEFAULT_CLASS).astype(str)
        return out


def load(path: str | Path | None = None) -> Catalog:
    """The catalog at ``path``, else ``$RHYTHM_PRICE_CATALOG``, else the shipped one."""
    return parse(
        *config_text(
            path,
            "RHYTHM_PRICE_CATALOG",
            "rhythm_pipelines.configs",
            "price_catalog.yaml",
            "price catalog",
            CatalogError,
        )
    )


_PRICE_KEYS = ("input_per_1k", "output_per_1k", "per_call", "quality", "rate_limits")


def _price(r: Reader, node: dict, path: str, base: Price | None) -> Price:
    if base is None:
        for k in ("input_per_1k", "output_per_1k"):
            if k not in node:
                raise r.fail(node, f"{path}.{k}", "required")
    values = {} if base is None else dict(base.__dict__)
    for k in ("input_per_1k", "output_per_1k", "per_call"):
        if k in node:
            values[k] = r.number(node, k, path)
    if "quality" in node:
        q = node["quality"]
        if not isinstance(q, int) or isinstance(q, bool) or q < 0:
            raise r.fail(node, f"{path}.quality", f"expected a whole number >= 0, got {q!r}", "quality")
        values["quality"] = q
    if "rate_limits" in node:
        limits = r.mapping(node["rate_limits"], f"{path}.rate_limits", ("requests_per_minute", "tokens_per_minute"),
                           node, "rate_limits")  # fmt: skip
        for k in ("requests_per_minute", "tokens_per_minute"):
            if k in limits:
                v = r.number(limits, k, f"{path}.rate_limits")
                if v == 0:
                    raise r.fail(limits, f"{path}.rate_limits.{k}", "must be positive (leave it out for no limit)", k)
                values[k] = v
    return Price(**values) if base is None else replace(base, **{k: values[k] for k in values})


def parse(text: str, origin: str = "<catalog>") -> Catalog:
    """Validate and build a catalog from YAML text."""
    r = Reader(origin, CatalogError)
    doc = r.mapping(r.load(text), "(top)", ("version", "currency", "mismatch_tolerance", "channels", "classes"))
    if doc.get("version", 1) != 1:
        raise r.fail(doc, "version", f"unsupported version {doc.get('version')!r} (this code reads 1)", "version")
    currency = doc.get("currency", "USD")
    if not isinstance(currency, str) or not currency.strip():
        raise r.fail(doc, "currency", f"expected a currency code, got {currency!r}", "currency")
    tolerance = r.number(doc, "mismatch_tolerance", "(top)", 0.01)
    chans = r.mapping(doc.get("channels"), "channels", None, doc, "channels")
    if not keys(chans):
        raise r.fail(doc, "channels", "the catalog prices no channel", "channels")
    channels: dict[str, Price] = {}
    regional: dict[tuple[str, str], Price] = {}
    for name in keys(chans):
        path = f"channels.{name}"
        node = r.mapping(chans[name], path, (*_PRICE_KEYS, "regions"), chans, name)
        channels[name] = _price(r, node, path, None)
        regions = r.mapping(node.get("regions"), f"{path}.regions", None, node, "regions")
        for region in keys(regions):
            rpath = f"{path}.regions.{region}"
            rnode = r.mapping(regions[region], rpath, _PRICE_KEYS, regions, region)
            regional[(name, str(region))] = _price(r, rnode, rpath, channels[name])
    cls_doc = r.mapping(doc.get("classes"), "classes", None, doc, "classes")
    classes: dict[str, RequestClass] = {}
    for name in keys(cls_doc):
        path = f"classes.{name}"
        node = r.mapping(cls_doc[name], path, ("min_quality", "channels"), cls_doc, name)
        if ("min_quality" in node) == ("channels" in node):
            raise r.fail(node, path, "give either min_quality or channels")
        listed = node.get("channels")
        if listed is not None:
            if not isinstance(listed, list) or not listed:
                raise r.fail(node, f"{path}.channels", "expected a non-empty list of channel names", "channels")
            odd = [c for c in listed if not isinstance(c, str)]
            if odd:
                raise r.fail(node, f"{path}.channels", f"expected channel names, got {plain(odd[0])!r}", "channels")
            unknown = [c for c in listed if c not in channels]
            if unknown:
                raise r.fail(node, f"{path}.channels", f"unknown channel {unknown[0]!r}", "channels")
            classes[name] = RequestClass(name, channels=tuple(str(c) for c in listed))
        else:
            q = node["min_quality"]
            if not isinstance(q, int) or isinstance(q, bool) or q < 0:
                raise r.fail(node, f"{path}.min_quality", f"expected a whole number >= 0, got {q!r}", "min_quality")
            classes[name] = RequestClass(name, min_quality=q)
    classes.setdefault(DEFAULT_CLASS, RequestClass(DEFAULT_CLASS, min_quality=0))
    for cls in classes.values():
        if not any(cls.allows(c, p) for c, p in channels.items()):
            raise r.fail(cls_doc, f"classes.{cls.name}", "no channel in the catalog may serve this class", cls.name)
    return Catalog(channels, classes, regional, currency.strip(), float(tolerance), origin)
