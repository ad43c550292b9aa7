"""YAML config files whose errors name the file, the line and the path of the offending field."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file that cannot be used: ``origin:line: path: reason``."""


def config_text(
    path: str | Path | None, env: str, package: str, shipped: str, what: str, error: type[ConfigError] = ConfigError
) -> tuple[str, str]:
    """(text, origin) of the config at ``path``, else at ``$env``, else the package's shipped file."""
    path = path or os.environ.get(env) or None
    if path is None:
        return resources.files(package).joinpath(shipped).read_text(), f"{shipped} (shipped)"
    p = Path(path)
    try:
        return p.read_text(), str(p)
    except OSError as exc:
        why = f"no such {what} file" if isinstance(exc, FileNotFoundError) else exc.strerror
        raise error(f"{p}: cannot read the {what} file: {why}") from exc


MAX_ALIASES = 25  # a config needs few; many is an expansion bomb ("billion laughs")


class _Loader(yaml.SafeLoader):
    """Keeps each mapping's line numbers (``__lines__``: key -> line) for error messages; refuses duplicate
    keys and more than ``MAX_ALIASES`` aliases (counted while composing, before anything is expanded)."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            self._aliases = getattr(self, "_aliases", 0) + 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"more than {MAX_ALIASES} aliases", mark)
        return super().compose_node(parent, index)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict:
    seen: dict[Any, int] = {}
    for k, _ in node.value:
        if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
            line = k.start_mark.line + 1
            if k.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {k.value!r} (lines {seen[k.value]} and {line})", k.start_mark
                )
            seen[k.value] = line
    mapping = yaml.SafeLoader.construct_mapping(loader, node, deep=True)
    mapping["__lines__"] = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def keys(node: dict) -> list[str]:
    """The mapping's own keys (the line bookkeeping left out)."""
    return [k for k in node if k not in ("__lines__", "__line__")]


def plain(node: Any) -> Any:
    """The value without line bookkeeping."""
    if isinstance(node, dict):
        return {k: plain(node[k]) for k in keys(node)}
    if isinstance(node, list):
        return [plain(x) for x in node]
    return node


class Reader:
    """Reads a parsed document and raises ``error`` with ``origin:line: path: reason``."""

    def __init__(self, origin: str, error: type[ConfigError] = ConfigError):
        self.origin, self.error = origin, error

    def load(self, text: str) -> Any:
        try:
            return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{self.origin}:{mark.line + 1}" if mark else self.origin
            raise self.error(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc

    def where(self, node: Any, key: str | None = None) -> str:
        """``origin:line`` of ``node[key]`` (or of ``node``)."""
        line = None
        if isinstance(node, dict):
            line = node.get("__lines__", {}).get(key) if key is not None else None
            line = line or node.get("__line__")
        return f"{self.origin}:{line}" if line else self.origin

    def fail(self, node: Any, path: str, reason: str, key: str | None = None) -> ConfigError:
        return self.error(f"{self.where(node, key)}: {path}: {reason}")

    def mapping(self, node: Any, path: str, allowed: tuple[str, ...] | None = None, parent=None, key=None) -> dict:
        if node is None:
            return {}
        if not isinstance(node, dict):
            raise self.fail(parent, path, f"expected a mapping, got {type(node).__name__}", key)
        if allowed is not None:
            unknown = [k for k in keys(node) if k not in allowed]
            if unknown:
                raise self.fail(
                    node, f"{path}.{unknown[0]}", f"unknown key; expected one of {', '.join(allowed)}", unknown[0]
                )
        return node

    def number(self, node: dict, key: str, path: str, default: float | None = None) -> float | None:
        v = node.get(key, default)
        if v is not None and (not isinstance(v, int | float) or isinstance(v, bool) or v < 0):
            raise self.fail(node, f"{path}.{key}", f"expected a non-negative number, got {v!r}", key)
        return None if v is None else float(v)
