"""Reading configuration: defaults < TOML file < ``DQD_*`` environment < command-line flags."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dqd.errors import ConfigError
from dqd.settings.schema import ENV_PREFIX, Settings, redact_url


def load(config_file: Path | str | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build the effective settings; raise :class:`ConfigError` naming the bad key."""
    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG") or None
    file_data: dict[str, Any] = {}
    if path:
        file_data = _read_toml(Path(path))
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    merged: dict[str, Any] = {}
    try:
        merged = _deep_merge(file_data, _env_as_dict())
        merged = _deep_merge(merged, _nest(flags))
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise _config_error(exc, merged) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("config", str(path), "an existing TOML file") from None
    except OSError as exc:
        raise ConfigError("config", str(path), f"a readable TOML file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", str(path), f"valid TOML ({exc})") from None


def _env_as_dict() -> dict[str, Any]:
    """``DQD_*`` variables as nested data, so they merge over the file section by section."""
    result: dict[str, Any] = {}
    for name, value in os.environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        if keys[0] not in Settings.model_fields:
            continue  # other tools' DQD_* variables (tests, wrappers) are not ours to reject
        node = result
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                break
        else:
            node[keys[-1]] = _maybe_json(value)
    return result


def _maybe_json(value: str) -> Any:
    stripped = value.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except ValueError:
            return value
    return value


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"benchmark.threads": 2}`` → ``{"benchmark": {"threads": 2}}``."""
    result: dict[str, Any] = {}
    for dotted, value in flat.items():
        keys = dotted.split(".")
        node = result
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return result


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def _config_error(exc: ValidationError, data: Mapping[str, Any]) -> ConfigError:
    error = exc.errors()[0]
    key = _dotted_key(error["loc"])
    value = error.get("input", _lookup(data, error["loc"]))
    if "database_url" in key and isinstance(value, str):
        value = redact_url(value)  # only the password: a wrong scheme must stay visible
    elif "database_url" in key or "token" in key or "secret" in key:
        value = "(redacted)"
    allowed = _allowed_text(error)
    return ConfigError(key, value, allowed)


def _dotted_key(loc: tuple[Any, ...]) -> str:
    """``models."bert/*.onnx".pin``: a glob holds dots and slashes, so it is quoted as TOML quotes it."""
    # A dict key's own error ends in "[key]": the key is already the part before it.
    parts = [str(part) for part in loc if part != "[key]"]
    if len(parts) > 1 and parts[0] == "models":
        parts[1] = json.dumps(parts[1])
    return ".".join(parts) or "config"


def _lookup(data: Mapping[str, Any], loc: tuple[Any, ...]) -> Any:
    node: Any = data
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _allowed_text(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "literal_error":
        return str(ctx.get("expected", "one of the listed values"))
    if kind == "extra_forbidden":
        return "no such key (see `dqd config show` for the known keys)"
    if kind in {"greater_than_equal", "greater_than", "less_than", "less_than_equal"}:
        return f"a number {error['msg'].removeprefix('Input should be ')}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    return str(error["msg"]).removeprefix("Input should be ")
