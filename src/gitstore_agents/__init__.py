"""gitstore-agents: GitStore's worker runtime.

Git events arrive on NATS JetStream, become catalog intelligence tasks, run as
bounded WASI modules and leave only as validation requests for the control
plane. The subpackages follow the data: ``envelopes`` (contracts),
``consumers`` (JetStream topology and roles), ``sandbox`` (WASI execution) and
``guardrails`` (what may be published).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
