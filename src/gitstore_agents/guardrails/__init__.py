"""Guardrails: what each role may run and propose, checked in code and by the NATS server.

* ``Policy`` (``load_policy``, ``default_policy``): the declarative policy.
* ``PolicyAdmission`` / ``PolicyOutputCheck``: the pipeline's admission and
  output-check stages (protocols ``Admission`` / ``OutputCheck``, ``Refusal``).
* ``PublishBoundary``: the only publisher a handler can reach.
* ``nats_permissions`` / ``nats_users`` / ``authorization_config``: the same
  rules as nats-server permissions (``gitstore-agents policy nats-config``).
* ``PermissionViolations``: the server's refusals, as the client sees them.
"""

from ._admission import PolicyAdmission, check_modules
from ._basic import BasicAdmission, BasicOutputCheck
from ._boundary import Outbound, PublishBoundary, PublishDeniedError, PublishRefusedError
from ._nats_auth import (
    AUDIT_ADMIN,
    CONTROL_PLANE,
    CONTROL_PLANE_DURABLE,
    DEAD_LETTER_SUFFIX,
    IDENTITIES,
    OPERATOR,
    PASSWORD_ENV_PREFIX,
    PROVISIONER,
    RUNTIME_IDENTITIES,
    STATUS_PROBE,
    NatsUser,
    Permissions,
    authorization_config,
    inbox_prefix,
    nats_permissions,
    nats_users,
    password_env,
    permissions_block,
    publish_subjects,
)
from ._output_check import CLAIM_KEYS, PolicyOutputCheck
from ._paths import PathPatternError, PathPatterns, compile_pattern
from ._policy import (
    MAX_FUEL,
    MAX_LIST_ITEMS,
    MAX_MEMORY_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_POLICY_FILE_BYTES,
    MAX_TIMEOUT_MS,
    Ceilings,
    ModuleAllowance,
    Policy,
    PolicyDocument,
    PolicyError,
    RolePolicy,
    RoleRules,
    default_policy,
    load_policy,
    ordered_roles,
    parse_policy,
    policy_summary,
)
from ._stages import Admission, KindAllowance, OutputCheck, Refusal
from ._subject_match import subject_matches
from ._violations import PermissionViolation, PermissionViolations, parse_violation

__all__ = [
    "AUDIT_ADMIN",
    "CLAIM_KEYS",
    "CONTROL_PLANE",
    "CONTROL_PLANE_DURABLE",
    "DEAD_LETTER_SUFFIX",
    "IDENTITIES",
    "MAX_FUEL",
    "MAX_LIST_ITEMS",
    "MAX_MEMORY_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_POLICY_FILE_BYTES",
    "MAX_TIMEOUT_MS",
    "OPERATOR",
    "PASSWORD_ENV_PREFIX",
    "PROVISIONER",
    "RUNTIME_IDENTITIES",
    "STATUS_PROBE",
    "Admission",
    "BasicAdmission",
    "BasicOutputCheck",
    "Ceilings",
    "KindAllowance",
    "ModuleAllowance",
    "NatsUser",
    "Outbound",
    "OutputCheck",
    "PathPatternError",
    "PathPatterns",
    "PermissionViolation",
    "PermissionViolations",
    "Permissions",
    "Policy",
    "PolicyAdmission",
    "PolicyDocument",
    "PolicyError",
    "PolicyOutputCheck",
    "PublishBoundary",
    "PublishDeniedError",
    "PublishRefusedError",
    "Refusal",
    "RolePolicy",
    "RoleRules",
    "authorization_config",
    "check_modules",
    "compile_pattern",
    "default_policy",
    "inbox_prefix",
    "load_policy",
    "nats_permissions",
    "nats_users",
    "ordered_roles",
    "parse_policy",
    "parse_violation",
    "password_env",
    "permissions_block",
    "policy_summary",
    "publish_subjects",
    "subject_matches",
]
