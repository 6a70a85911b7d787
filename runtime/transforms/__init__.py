"""Single message transforms (SMTs) and predicates, as in Kafka Connect.

Build a connector's chain with `build_chain` from its flat config
(``transforms=...``, ``transforms.<alias>.type=...``, ``predicates=...``) and run
each record through `TransformChain.apply`. The built-ins keep Kafka's names, config
keys and behaviour (see `omconnect.runtime.transforms.registry` for the names).
"""

from omconnect.runtime.transforms.base import DataError, Predicate, Transformation, TransformError
from omconnect.runtime.transforms.chain import Stage, TransformChain, build_chain

__all__ = [
    "DataError",
    "Predicate",
    "Stage",
    "TransformChain",
    "TransformError",
    "Transformation",
    "build_chain",
]
