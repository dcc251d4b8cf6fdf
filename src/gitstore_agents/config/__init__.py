"""Configuration: one YAML file validated by msgspec, ``GITSTORE_*`` variables on top.

Errors name the field path; contradictory settings (a retry policy JetStream
would refuse, an ack wait shorter than a task can take) stop the process at start.
"""

from ._defaults import builtin_defaults
from ._load import CONFIG_ENV, ENV_OVERRIDES, load_config
from ._model import (
    INLINE_FUEL,
    Config,
    ExtensionConfig,
    HealthSettings,
    KindConfig,
    LimitsConfig,
    NatsSettings,
    PerInputMiB,
    RoleConfig,
)
from ._module_ref import ModuleRef, ModuleSource, parse_module_ref
from ._names import (
    CATALOG_ENRICH,
    ENRICHER,
    EXTENSION_RUN,
    EXTENSION_RUNNER,
    GIT_PUSH,
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
    ROLES,
)
from ._topology import MAX_DELIVERIES_ADVISORY, StreamLimits, Topology
from ._validate import validate_config
from ._yaml import DuplicateKeyError, YamlError, decode_yaml

__all__ = [
    "CATALOG_ENRICH",
    "CONFIG_ENV",
    "ENRICHER",
    "ENV_OVERRIDES",
    "EXTENSION_RUN",
    "EXTENSION_RUNNER",
    "GIT_PUSH",
    "INLINE_FUEL",
    "MARKDOWN_COMPILE",
    "MARKDOWN_COMPILER",
    "MAX_DELIVERIES_ADVISORY",
    "PLANNER",
    "ROLES",
    "Config",
    "DuplicateKeyError",
    "ExtensionConfig",
    "HealthSettings",
    "KindConfig",
    "LimitsConfig",
    "ModuleRef",
    "ModuleSource",
    "NatsSettings",
    "PerInputMiB",
    "RoleConfig",
    "StreamLimits",
    "Topology",
    "YamlError",
    "builtin_defaults",
    "decode_yaml",
    "load_config",
    "parse_module_ref",
    "validate_config",
]
