"""`SchemaRegistry`: Avro schemas by id, kept in the access point's key-value store.

The registry plays the part of Confluent's Schema Registry for `AvroConverter`
without a server: every worker that shares the access point sees the same ids.

Keys, under ``prefix`` (default ``schemas/``):

====================================  ==============================================
``next-id``                           the last id handed out (decimal text)
``ids/<id>``                          the schema with that id (canonical JSON)
``fingerprints/<sha-256>``            the id of the schema with that canonical form
``subjects/<subject>/<version>``      the id of that version of a subject
====================================  ==============================================

Guarantees: ids are allocated by compare-and-set on ``next-id``, so two workers
never hand out the same id; a schema's id is published by a create-only
compare-and-set on its fingerprint, so the same schema registered twice (even by
two workers at once) gets one id; ``ids/<id>`` is written before the id is
published, so any id a reader sees resolves. Ids and schemas never change once
written, which makes the in-memory caches safe (read-through, bounded).

The canonical form is the schema's JSON with sorted keys and no spaces. Unlike
Avro's Parsing Canonical Form it keeps properties (``connect.type``,
``logicalType``...), which decide how a value reads back.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Protocol

from fastavro import parse_schema

from omconnect.broker.api import KeyValue
from omconnect.connect.schema import SchemaError
from omconnect.errors import NotFoundError, RetriableError

MAX_CAS_ATTEMPTS = 1000
AvroSchema = dict[str, Any] | list[Any] | str
"""An Avro schema as parsed JSON: a record/array/... object, a union list, or a name."""


class KeyValueLike(Protocol):
    """What the registry needs of `omconnect.access_point.KeyValueStore`."""

    def get(self, key: str) -> KeyValue | None: ...

    def put(self, key: str, value: bytes, ttl_ms: int = 0) -> int: ...

    def compare_and_set(
        self, key: str, value: bytes, expected_revision: int, ttl_ms: int = 0
    ) -> int | None: ...

    def delete(self, key: str, expected_revision: int = -1) -> bool: ...

    def list(self, prefix: str = "") -> list[KeyValue]: ...


def subject_name(topic: str, is_key: bool) -> str:
    """Confluent's TopicNameStrategy: ``<topic>-key`` or ``<topic>-value``."""
    return f"{topic}-{'key' if is_key else 'value'}"


def canonical_form(schema: AvroSchema) -> str:
    """The schema's JSON with sorted keys and no whitespace (``schema`` may also be
    JSON text)."""
    if isinstance(schema, str) and schema.lstrip()[:1] in ("{", "[", '"'):
        schema = json.loads(schema)
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(canonical: str) -> str:
    """SHA-256 (hex) of a canonical form."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class SchemaRegistry:
    """Register Avro schemas under subjects and look them up by id (see module doc).

    Safe to share between threads. KV failures (e.g. `ConnectionLostError`)
    propagate for the caller to retry.
    """

    def __init__(self, kv: KeyValueLike, prefix: str = "schemas/", cache_size: int = 1000) -> None:
        self._kv = kv
        self._prefix = prefix
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._by_id: dict[int, AvroSchema] = {}
        self._by_fingerprint: dict[str, int] = {}
        self._in_subject: set[tuple[str, int]] = set()

    # -- writing -----------------------------------------------------------------------

    def register(self, subject: str, schema: AvroSchema) -> int:
        """The id of ``schema``, registering it (and a new version of ``subject``) if
        it is new. `SchemaError` if it is not a valid Avro schema."""
        canonical = canonical_form(schema)
        digest = fingerprint(canonical)
        with self._lock:
            schema_id = self._by_fingerprint.get(digest)
            if schema_id is not None and (subject, schema_id) in self._in_subject:
                return schema_id
        if schema_id is None:
            schema_id = self._id_of(canonical, digest)
        self._add_to_subject(subject, schema_id)
        with self._lock:
            self._remember(schema_id, json.loads(canonical), digest)
            self._in_subject.add((subject, schema_id))
        return schema_id

    def _id_of(self, canonical: str, digest: str) -> int:
        fingerprint_key = f"{self._prefix}fingerprints/{digest}"
        found = self._kv.get(fingerprint_key)
        if found is not None:
            return int(found.value)
        _validate(canonical)
        schema_id = self._allocate_id()
        id_key = f"{self._prefix}ids/{schema_id}"
        self._kv.put(id_key, canonical.encode("utf-8"))
        if self._kv.compare_and_set(fingerprint_key, str(schema_id).encode(), 0) is not None:
            return schema_id
        # Another worker registered the same schema first: use its id, drop ours
        # (never published, so nobody can hold it).
        self._kv.delete(id_key)
        winner = self._kv.get(fingerprint_key)
        if winner is None:
            raise RetriableError(f"schema fingerprint {digest} vanished while registering")
        return int(winner.value)

    def _allocate_id(self) -> int:
        counter = f"{self._prefix}next-id"
        for _ in range(MAX_CAS_ATTEMPTS):
            current = self._kv.get(counter)
            last = int(current.value) if current is not None else 0
            revision = current.revision if current is not None else 0
            if self._kv.compare_and_set(counter, str(last + 1).encode(), revision) is not None:
                return last + 1
        raise RetriableError("could not allocate a schema id: too much contention")

    def _add_to_subject(self, subject: str, schema_id: int) -> None:
        for _ in range(MAX_CAS_ATTEMPTS):
            versions = self._versions(subject)
            if schema_id in versions.values():
                return
            version = max(versions, default=0) + 1
            key = f"{self._subject_prefix(subject)}{version:010d}"
            if self._kv.compare_and_set(key, str(schema_id).encode(), 0) is not None:
                return
        raise RetriableError(f"could not add a version to subject {subject!r}")

    # -- reading -----------------------------------------------------------------------

    def schema(self, schema_id: int) -> AvroSchema:
        """The schema with ``schema_id``; `NotFoundError` if there is none."""
        with self._lock:
            cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        entry = self._kv.get(f"{self._prefix}ids/{schema_id}")
        if entry is None:
            raise NotFoundError(f"no schema with id {schema_id}")
        canonical = entry.value.decode("utf-8")
        schema: AvroSchema = json.loads(canonical)
        with self._lock:
            self._remember(schema_id, schema, fingerprint(canonical))
        return schema

    def lookup(self, schema: AvroSchema) -> int | None:
        """The id of ``schema`` if it is registered, else None."""
        digest = fingerprint(canonical_form(schema))
        with self._lock:
            cached = self._by_fingerprint.get(digest)
        if cached is not None:
            return cached
        found = self._kv.get(f"{self._prefix}fingerprints/{digest}")
        return int(found.value) if found is not None else None

    def versions(self, subject: str) -> list[int]:
        """The ids of ``subject``'s versions, oldest first."""
        return [schema_id for _, schema_id in sorted(self._versions(subject).items())]

    def latest(self, subject: str) -> tuple[int, AvroSchema] | None:
        """The id and schema of ``subject``'s newest version, or None."""
        ids = self.versions(subject)
        return (ids[-1], self.schema(ids[-1])) if ids else None

    def subjects(self) -> list[str]:
        """Every subject with at least one version, sorted."""
        prefix = f"{self._prefix}subjects/"
        names = {e.key[len(prefix) :].rpartition("/")[0] for e in self._kv.list(prefix)}
        return sorted(names)

    def _subject_prefix(self, subject: str) -> str:
        return f"{self._prefix}subjects/{subject}/"

    def _versions(self, subject: str) -> dict[int, int]:
        prefix = self._subject_prefix(subject)
        out: dict[int, int] = {}
        for entry in self._kv.list(prefix):
            version = entry.key[len(prefix) :]
            if version.isdigit():
                out[int(version)] = int(entry.value)
        return out

    def _remember(self, schema_id: int, schema: AvroSchema, digest: str) -> None:
        if len(self._by_id) >= self._cache_size:
            self._by_id.clear()
            self._by_fingerprint.clear()
            self._in_subject.clear()
        self._by_id[schema_id] = schema
        self._by_fingerprint[digest] = schema_id


def _validate(canonical: str) -> None:
    try:
        parse_schema(json.loads(canonical), named_schemas={})
    except Exception as exc:  # fastavro raises several unrelated types
        raise SchemaError(f"not a valid Avro schema: {exc}") from None
