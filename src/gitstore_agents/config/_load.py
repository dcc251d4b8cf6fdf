"""Load the configuration: built-in defaults, then the YAML file, then ``GITSTORE_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ..errors import ConfigError
from ._defaults import builtin_defaults, deep_merge
from ._model import Config, KindConfig, RoleConfig
from ._validate import validate_config
from ._yaml import DuplicateKeyError, YamlError, decode_yaml

T = TypeVar("T")

CONFIG_ENV = "GITSTORE_CONFIG"

ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "GITSTORE_NATS_URL": ("nats", "url"),
    "GITSTORE_NATS_USER": ("nats", "user"),
    "GITSTORE_NATS_PASSWORD": ("nats", "password"),
    "GITSTORE_NATS_CREDS": ("nats", "creds_file"),
    "GITSTORE_NATS_INBOX_PREFIX": ("nats", "inbox_prefix"),
    "GITSTORE_NATS_TLS_CA": ("nats", "tls_ca_file"),
    "GITSTORE_NATS_TLS_CERT": ("nats", "tls_cert_file"),
    "GITSTORE_NATS_TLS_KEY": ("nats", "tls_key_file"),
    "GITSTORE_NATS_TLS_SERVER_NAME": ("nats", "tls_server_name"),
    "GITSTORE_HEALTH_PORT": ("health", "port"),
    "GITSTORE_WORKER_ID": ("worker_id",),
    "GITSTORE_POLICY_FILE": ("policy_file",),
    "GITSTORE_TOPOLOGY_PREFIX": ("topology", "prefix"),
    "GITSTORE_DRAIN_GRACE_S": ("drain_grace_s",),
    "GITSTORE_PROVISION_ON_START": ("provision_on_start",),
    "GITSTORE_ON_CONSUMER_DRIFT": ("on_consumer_drift",),
}
"""Environment variables that override one setting each (they win over the file)."""


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the configuration a process runs with.

    Order (later wins): built-in defaults, the YAML file (``path``, else
    ``$GITSTORE_CONFIG``, else none), ``overrides`` (nested mapping, for
    callers such as ``dev``), then the ``GITSTORE_*`` variables of ``env``.

    Raises:
        ConfigError: the file is missing or malformed, a value has the wrong
            type (the message names its path, e.g. ``$.roles.planner.batch``),
            or the settings contradict each other.
    """
    env = os.environ if env is None else env
    source = str(path) if path is not None else env.get(CONFIG_ENV) or None
    data = builtin_defaults()
    if source is not None:
        data = deep_merge(data, _read_yaml(Path(source)))
    if overrides:
        data = deep_merge(data, dict(overrides))
    for var, field_path in ENV_OVERRIDES.items():
        value = env.get(var)
        if value is not None and value != "":
            _set_path(data, field_path, value)
    where = source or "built-in defaults"
    roles_data = data.pop("roles", None) or {}
    if not isinstance(roles_data, dict):
        raise ConfigError(
            f"{where}: Expected `object`, got `{type(roles_data).__name__}` - at `$.roles`"
        )
    config = _convert(data, Config, "$", where)
    roles = {
        str(name): _convert_role(raw, f"$.roles.{name}", where) for name, raw in roles_data.items()
    }
    return validate_config(msgspec.structs.replace(config, roles=roles))


def _convert_role(raw: Any, path: str, where: str) -> RoleConfig:
    # Roles and kinds are mapping keys, which msgspec's error paths elide
    # ("$.roles[...]"): convert them one by one so errors name them.
    if not isinstance(raw, dict):
        raw = {} if raw is None else raw
    kinds_data = raw.pop("kinds", None) if isinstance(raw, dict) else None
    role = _convert(raw, RoleConfig, path, where)
    if kinds_data is None:
        return role
    if not isinstance(kinds_data, dict):
        raise ConfigError(f"{where}: Expected `object` - at `{path}.kinds`")
    kinds = {
        str(kind): _convert(value, KindConfig, f"{path}.kinds.{kind}", where)
        for kind, value in kinds_data.items()
    }
    return msgspec.structs.replace(role, kinds=kinds)


def _convert(data: Any, type_: type[T], path: str, where: str) -> T:
    try:
        # strict=False lets "8080" from an environment variable become an int.
        return msgspec.convert(data, type_, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc).replace("`$", f"`{path}", 1) if path != "$" else str(exc)
        if "- at `" not in message:
            message += f" - at `{path}`"
        raise ConfigError(f"{where}: {message}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    try:
        raw = decode_yaml(text)
    except DuplicateKeyError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    except YamlError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping")
    return raw


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value
