"""How a Connect record travels as an OpenMessaging message, and back.

* the converted value is the message body (an empty body with the property
  ``connect.tombstone=true`` for a None value);
* the converted key becomes the ``message_key`` (it picks the partition): as
  text when it is valid UTF-8, else base64 with ``connect.key.encoding=base64``.
  An empty message_key means "no key" (OpenMessaging has no null key), so an
  empty converted key reads back as None, as do keys of messages that other
  producers sent without one;
* the record timestamp is the ``born_timestamp``; an explicit partition is kept
  for a record without a key (with a key, the producer picks by the key);
* each Connect header becomes a property (strings as they are, other values as
  JSON, listed in ``connect.header.types``); properties starting with
  ``connect.`` are omconnect's own and are not headers.

Pure functions: the runners call them between converting and sending.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from omconnect.connect.records import ConnectRecord, Header, Headers, SinkRecord
from omconnect.connect.schema import Schema
from omconnect.message import Message

TOMBSTONE = "connect.tombstone"
KEY_ENCODING = "connect.key.encoding"
HEADER_TYPES = "connect.header.types"
_INTERNAL_PREFIX = "connect."
_NO_HEADERS = Headers()  # immutable, so one instance serves every message without any


def to_message(record: ConnectRecord, key: bytes | None, value: bytes | None) -> Message:
    """The message for a record whose key and value are already converted."""
    properties: dict[str, str] = {}
    json_headers: list[str] = []
    for header in record.headers:
        if header.key.startswith(_INTERNAL_PREFIX):
            continue
        if isinstance(header.value, str):
            properties[header.key] = header.value
        else:
            properties[header.key] = json.dumps(header.value, default=str)
            json_headers.append(header.key)
    if json_headers:
        properties[HEADER_TYPES] = json.dumps(json_headers)
    message_key = ""
    if key is not None:
        try:
            message_key = key.decode("utf-8")
        except UnicodeDecodeError:
            message_key = base64.b64encode(key).decode()
            properties[KEY_ENCODING] = "base64"
    if value is None:
        properties[TOMBSTONE] = "true"
    return Message(
        value or b"",
        destination=record.topic,
        message_key=message_key,
        properties=properties,
        partition=record.partition if record.partition is not None else -1,
        born_timestamp=record.timestamp or 0,
    )


def key_bytes(message: Message) -> bytes | None:
    """The converted key a message carries (None for a record without a key)."""
    properties = message.properties
    if not message.message_key:
        return None
    if properties.get(KEY_ENCODING) == "base64":
        try:
            return base64.b64decode(message.message_key, validate=True)
        except binascii.Error:
            return message.message_key.encode()
    return message.message_key.encode()


def value_bytes(message: Message) -> bytes | None:
    """The converted value a message carries (None for a tombstone)."""
    return None if message.properties.get(TOMBSTONE) == "true" else message.body


def headers_of(message: Message) -> Headers:
    """The Connect headers a message carries."""
    properties = message.properties
    if not properties:
        return _NO_HEADERS
    types = properties.get(HEADER_TYPES)
    json_keys = set(json.loads(types)) if types is not None else set()
    items: list[Header] = []
    for key, text in properties.items():
        if key.startswith(_INTERNAL_PREFIX):
            continue
        value: Any = text
        if key in json_keys:
            try:
                value = json.loads(text)
            except ValueError:
                value = text
        items.append(Header(key, value))
    return Headers(tuple(items))


def to_sink_record(
    message: Message,
    key_schema: Schema | None,
    key: Any,
    value_schema: Schema | None,
    value: Any,
) -> SinkRecord:
    """The sink record for a received message whose key and value were converted."""
    return SinkRecord(
        topic=message.destination,
        partition=message.partition,
        key_schema=key_schema,
        key=key,
        value_schema=value_schema,
        value=value,
        timestamp=message.born_timestamp or None,
        headers=headers_of(message),
        offset=message.offset,
        original_topic=message.destination,
        original_partition=message.partition,
        original_offset=message.offset,
    )
