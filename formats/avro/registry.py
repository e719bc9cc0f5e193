"""A small client of the Confluent Schema Registry REST API (also served by Karapace, Redpanda, Apicurio's
Confluent-compatible API), on the standard library's urllib.

Used endpoints:
- `POST /subjects/{subject}/versions` `{"schema": "<Avro schema JSON>"}` -> `{"id": n}`: registers a schema
  under a subject (or returns the id it already has). The registry checks the new version against the
  subject's compatibility level (BACKWARD unless configured) and answers 409 when it is incompatible.
- `GET /schemas/ids/{id}` -> `{"schema": "..."}`: the schema of an id (what a consumer does for each message).
- `GET /config/{subject}?defaultToGlobal=true` -> `{"compatibilityLevel": "BACKWARD"}`: read to explain a 409.
- `GET /subjects/{subject}/versions/latest` and `POST /compatibility/subjects/{subject}/versions/latest?verbose=true`
  `{"schema": ...}` -> `{"is_compatible": bool, "messages": [...]}`: the `compatible` schema-change policy's
  questions before it registers a new version (`obsync.formats.avro.compat`).

Answers are cached: a (subject, schema) pair is registered once per process, an id's schema fetched once.
Basic authentication when a user is given (or written in the URL as `https://user:password@host`); the
password is never logged nor shown in errors or `repr`. Several URLs may be given comma-separated: the next
is tried when one cannot be reached. Connection failures and 5xx answers are retried a few times, then
raised as `SchemaRegistryUnavailable` (transient); refusals (401/403, 409, 422) as terminal errors that say
what to do.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from obsync.formats.avro.errors import IncompatibleSchemaError, SchemaRegistryError, SchemaRegistryUnavailable

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPT = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json"


def schema_text(schema: Any) -> str:
    """The compact JSON text of a schema, as registered (and as Java's `Schema.toString()` writes it)."""
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


class SchemaRegistryClient:
    """Registers and fetches Avro schemas; safe to share between threads."""

    def __init__(self, url: str, user: str | None = None, password: str | None = None, *,
                 timeout: float = 10.0, attempts: int = 3, backoff: float = 0.5) -> None:
        self.urls: list[str] = []
        for raw in url.split(","):
            parts = urllib.parse.urlsplit(raw.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{raw.strip()!r} is not an http(s) URL")
            if parts.username is not None and user is None:
                user = urllib.parse.unquote(parts.username)
                password = urllib.parse.unquote(parts.password or "")
            netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
            if ":" in parts.hostname:  # IPv6 literal
                netloc = f"[{parts.hostname}]" + ("" if parts.port is None else f":{parts.port}")
            self.urls.append(urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")))
        self.user = user
        self._auth = (
            "Basic " + base64.b64encode(f"{user}:{password or ''}".encode()).decode() if user is not None else None
        )
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        who = f", user={self.user!r}" if self.user is not None else ""
        return f"SchemaRegistryClient({','.join(self.urls)!r}{who})"

    # ------------------------------------------------------------------ public

    def register(self, subject: str, schema: Any) -> int:
        """The id of `schema` under `subject`, registering it as a new version if it is new there."""
        text = schema if isinstance(schema, str) else schema_text(schema)
        with self._lock:
            cached = self._ids.get((subject, text))
        if cached is not None:
            return cached
        path = f"/subjects/{_quote(subject)}/versions"
        try:
            answer = self._request("POST", path, {"schema": text})
        except _Refused as r:
            if r.status == 409:
                level = self.compatibility(subject)
                raise IncompatibleSchemaError(
                    f"schema registry refused the new schema of subject {subject!r}: it is not compatible "
                    f"with the subject's earlier versions under compatibility level {level} ({r.message}). "
                    f"A column change such as a type change or a new NOT NULL column without a default breaks "
                    f"BACKWARD compatibility; register the change by hand, or relax the level for this subject "
                    f"(PUT {self.urls[0]}/config/{_quote(subject)} {{\"compatibility\": \"NONE\"}}) and "
                    f"run the task again") from None
            if r.status == 422:
                raise SchemaRegistryError(
                    f"schema registry rejected the schema of subject {subject!r} as invalid: {r.message}"
                ) from None
            raise r.error() from None
        schema_id = int(answer["id"])
        with self._lock:
            self._ids[(subject, text)] = schema_id
            self._schemas.setdefault(schema_id, json.loads(text))
        log.info("schema registry: subject %s has schema id %d", subject, schema_id)
        return schema_id

    def schema(self, schema_id: int) -> Any:
        """The Avro schema (parsed JSON) registered as `schema_id`."""
        with self._lock:
            cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        try:
            answer = self._request("GET", f"/schemas/ids/{int(schema_id)}")
        except _Refused as r:
            if r.status == 404:
                raise SchemaRegistryError(f"schema registry has no schema with id {schema_id}") from None
            raise r.error() from None
        if answer.get("schemaType", "AVRO") != "AVRO":
            raise SchemaRegistryError(f"schema id {schema_id} is a {answer['schemaType']} schema, not Avro")
        parsed = json.loads(answer["schema"])
        with self._lock:
            self._schemas[schema_id] = parsed
        return parsed

    def compatibility(self, subject: str) -> str:
        """The compatibility level that applies to `subject` ("unknown" if the registry does not say)."""
        for path in (f"/config/{_quote(subject)}?defaultToGlobal=true", "/config"):
            try:
                answer = self._request("GET", path)
            except (_Refused, SchemaRegistryError):
                continue
            level = answer.get("compatibilityLevel") or answer.get("compatibility")
            if level:
                return str(level)
        return "unknown"

    def latest(self, subject: str) -> Any | None:
        """The latest Avro schema (parsed JSON) registered under `subject`; None when it has none."""
        try:
            answer = self._request("GET", f"/subjects/{_quote(subject)}/versions/latest")
        except _Refused as r:
            if r.status == 404:
                return None
            raise r.error() from None
        return json.loads(answer["schema"])

    def check(self, subject: str, schema: Any) -> list[str]:
        """Why the registry would refuse `schema` as the next version of `subject` under its compatibility
        level (empty: it would accept it, or the subject has no version yet)."""
        text = schema if isinstance(schema, str) else schema_text(schema)
        path = f"/compatibility/subjects/{_quote(subject)}/versions/latest?verbose=true"
        try:
            answer = self._request("POST", path, {"schema": text})
        except _Refused as r:
            if r.status == 404:  # no subject or no version yet: anything is compatible
                return []
            if r.status == 422:
                raise SchemaRegistryError(f"schema registry rejected the schema of subject {subject!r} as "
                                          f"invalid: {r.message}") from None
            raise r.error() from None
        if answer.get("is_compatible", False):
            return []
        return [str(m) for m in answer.get("messages") or ()] or ["the registry gives no reason"]

    def versions(self, subject: str) -> list[int]:
        """The versions registered under `subject` (empty if the subject does not exist)."""
        try:
            return [int(v) for v in self._request("GET", f"/subjects/{_quote(subject)}/versions")]
        except _Refused as r:
            if r.status == 404:
                return []
            raise r.error() from None

    # ------------------------------------------------------------------ HTTP

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": ACCEPT}
        if data is not None:
            headers["Content-Type"] = CONTENT_TYPE
        if self._auth is not None:
            headers["Authorization"] = self._auth
        last = ""
        for attempt in range(self.attempts):
            for base in self.urls:
                req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
                try:
                    with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                        return json.loads(resp.read() or b"null")
                except urllib.error.HTTPError as e:
                    status, message = e.code, _message(e)
                    if status >= 500:
                        last = f"{base} answered {status}: {message}"
                        continue
                    raise _Refused(status, message, method, base + path) from None
                except (urllib.error.URLError, OSError, TimeoutError) as e:
                    last = f"cannot reach {base}: {getattr(e, 'reason', e)}"
                    continue
            if attempt + 1 < self.attempts:
                time.sleep(self.backoff * 2**attempt)
        raise SchemaRegistryUnavailable(f"schema registry unavailable after {self.attempts} attempts: {last}")


class _Refused(Exception):
    """A 4xx answer, turned into an `SchemaRegistryError` by the caller that knows what it means."""

    def __init__(self, status: int, message: str, method: str, url: str) -> None:
        super().__init__(status, message)
        self.status, self.message, self.method, self.url = status, message, method, url

    def error(self) -> SchemaRegistryError:
        if self.status in (401, 403):
            return SchemaRegistryError(
                f"schema registry refused {self.method} {self.url} ({self.status}: {self.message}); check "
                f"`format_options.schema_registry.user` and `.password`")
        return SchemaRegistryError(f"schema registry answered {self.status} to {self.method} {self.url}: "
                                   f"{self.message}")


def _message(e: urllib.error.HTTPError) -> str:
    """The registry's `message` of an error answer (its body if it is not the usual JSON)."""
    try:
        raw = e.read()
    except OSError:
        raw = b""
    try:
        body = json.loads(raw)
        return str(body.get("message") or body)
    except (ValueError, AttributeError):
        return raw.decode("utf-8", "replace")[:500] or (e.reason if isinstance(e.reason, str) else "")


def _quote(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")
