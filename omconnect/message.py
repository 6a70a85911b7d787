"""The OpenMessaging message: a body, the standard headers and free-form properties.

Header names follow the OpenMessaging 1.0 specification (`MESSAGE_ID`,
`DESTINATION`, ...). In Python they are snake_case attributes; `HEADER_NAMES` maps
them to the specification's camelCase names, which the CLI and JSON output use.

Time headers are epoch milliseconds. Two need care:

* ``expire_time`` is an *absolute* epoch-ms deadline; a message not delivered by then
  is dropped by the broker. 0 means it never expires.
* ``delay_time`` is a *relative* delay in ms counted from ``born_timestamp``; the
  broker withholds the message until then. 0 means deliver at once.

``partition`` and ``offset`` are set by the broker when the message is stored;
``store_timestamp`` and ``store_host`` likewise. ``delivery_count`` counts
deliveries that ended in a nack or an ack timeout (see `omconnect.consumer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(slots=True)
class Message:
    """One message. ``body`` is opaque bytes; ``properties`` are string to string."""

    body: bytes
    destination: str = ""
    message_key: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    message_id: str = ""
    born_timestamp: int = 0
    born_host: str = ""
    store_timestamp: int = 0
    store_host: str = ""
    partition: int = -1
    offset: int = -1
    expire_time: int = 0
    priority: int = 0
    compression: str = ""
    trace_id: str = ""
    transaction_id: str = ""
    delay_time: int = 0
    durability: int = 0
    correlation_id: str = ""
    delivery_count: int = 0
    # Set by a consumer on the messages it hands out: (queue read from, partition,
    # offset). `ack`/`nack` use it (RocketMQ 5's receipt handle). Never encoded.
    receipt: tuple[str, int, int] | None = field(default=None, repr=False, compare=False)

    def header_dict(self) -> dict[str, Any]:
        """The headers that differ from their defaults, under their specification names."""
        out: dict[str, Any] = {}
        for name, spec_name in HEADER_NAMES.items():
            value = getattr(self, name)
            if value != _DEFAULTS[name]:
                out[spec_name] = value
        return out


# snake_case attribute -> OpenMessaging 1.0 header name
HEADER_NAMES: dict[str, str] = {
    "destination": "destination",
    "message_key": "messageKey",
    "message_id": "messageId",
    "born_timestamp": "bornTimestamp",
    "born_host": "bornHost",
    "store_timestamp": "storeTimestamp",
    "store_host": "storeHost",
    "partition": "partition",
    "offset": "offset",
    "expire_time": "expireTime",
    "priority": "priority",
    "compression": "compression",
    "trace_id": "traceId",
    "transaction_id": "transactionId",
    "delay_time": "delayTime",
    "durability": "durability",
    "correlation_id": "correlationId",
    "delivery_count": "deliveryCount",
}

_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Message) if f.name in HEADER_NAMES}
