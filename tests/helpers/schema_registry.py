"""A schema registry for the tests: the part of Confluent's Schema Registry REST API obsync and its tests use.

No real registry can be installed here, so this one (stdlib `http.server` in a thread, 127.0.0.1, a free port)
stands in. It keeps what the real one keeps and answers as it does:
- global schema ids (the same schema under any subject has one id), versions per subject from 1;
- `POST /subjects/{s}/versions`: register (or return the id of an already registered schema); 422 with
  `error_code` 42201 for a schema fastavro cannot parse; 409 when the subject's compatibility level refuses it;
- `GET /schemas/ids/{id}`, `GET /subjects`, `GET /subjects/{s}/versions`, `GET /subjects/{s}/versions/{v|latest}`;
- `GET|PUT /config` and `/config/{s}` (default BACKWARD; NONE, BACKWARD, FORWARD, FULL and their
  `_TRANSITIVE` forms), `POST /compatibility/subjects/{s}/versions/{v|latest}`;
- basic authentication when built with a user (401 otherwise).
Compatibility follows Avro's schema resolution rules: a reader reads a writer when every reader field is in
the writer (resolving recursively: numeric promotions, string <-> bytes, unions branch by branch) or has a
default; names of records, enums and fixed types must match. That covers what a DDL does to a table's schema
(an added optional column is BACKWARD compatible; a type change or a new required field without default is not).
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from fastavro import parse_schema

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
PROMOTIONS = {"int": {"long", "float", "double"}, "long": {"float", "double"}, "float": {"double"},
              "string": {"bytes"}, "bytes": {"string"}}
LEVELS = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE")
JSON_TYPE = "application/vnd.schemaregistry.v1+json"


class TestSchemaRegistry:
    """`with TestSchemaRegistry() as reg:` ... `reg.url`; `reg.requests` lists (method, path) received."""

    __test__ = False  # not a pytest test class

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        self.user, self.password = user, password
        self.schemas: list[str] = []  # id - 1 -> schema text
        self.ids: dict[str, int] = {}  # normalized text -> id
        self.subjects: dict[str, list[int]] = {}  # subject -> schema id of each version
        self.config: dict[str, str] = {}  # subject -> level; "" is the global level
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> TestSchemaRegistry:
        registry = self

        class Handler(_Handler):
            reg = registry

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="test-schema-registry", daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # ------------------------------------------------------------------ the API, minus HTTP

    def level(self, subject: str | None) -> str:
        return self.config.get(subject or "", "") or self.config.get("", "") or "BACKWARD"

    def register(self, subject: str, text: str) -> tuple[int, Any]:
        try:
            schema = json.loads(text)
            parse_schema(schema)
        except Exception as e:  # noqa: BLE001 - any schema fastavro cannot parse is a 422, as the registry answers
            return 422, {"error_code": 42201, "message": f"Invalid schema: {e}"}
        key = json.dumps(schema, sort_keys=True)
        versions = self.subjects.get(subject, [])
        sid = self.ids.get(key)
        if sid is not None and sid in versions:
            return 200, {"id": sid}
        problems = self.incompatibilities(subject, schema, None)
        if problems:
            return 409, {"error_code": 409, "message": (
                f"Schema being registered is incompatible with an earlier schema for subject \"{subject}\", "
                f"details: {problems}")}
        if sid is None:
            self.schemas.append(text)
            sid = self.ids[key] = len(self.schemas)
        self.subjects.setdefault(subject, []).append(sid)
        return 200, {"id": sid}

    def incompatibilities(self, subject: str, schema: Any, version: int | None) -> list[str]:
        """What makes `schema` incompatible with the subject's versions under its level (empty: none)."""
        level = self.level(subject)
        versions = self.subjects.get(subject, [])
        if level == "NONE" or not versions:
            return []
        if version is not None:
            others = [versions[version - 1]]
        else:
            others = versions if level.endswith("_TRANSITIVE") else versions[-1:]
        new = expand(schema)
        problems: list[str] = []
        for sid in others:
            old = expand(json.loads(self.schemas[sid - 1]))
            if level.startswith(("BACKWARD", "FULL")):
                problems += [f"reader (new) cannot read writer (id {sid}): {p}" for p in can_read(new, old)]
            if level.startswith(("FORWARD", "FULL")):
                problems += [f"reader (id {sid}) cannot read writer (new): {p}" for p in can_read(old, new)]
        return problems


class _Handler(BaseHTTPRequestHandler):
    reg: TestSchemaRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        path = urlsplit(self.path).path
        reg = self.reg
        with reg.lock:
            reg.requests.append((method, self.path))
            if reg.user is not None and not self._authorized():
                status, answer = 401, {"error_code": 401, "message": "Unauthorized"}
            else:
                status, answer = self._route(method, [unquote(p) for p in path.strip("/").split("/")], body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == (self.reg.user, self.reg.password)

    def _route(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        reg = self.reg
        match method, parts:
            case "POST", ["subjects", subject, "versions"]:
                return reg.register(subject, body["schema"])
            case "GET", ["schemas", "ids", sid] if sid.isdigit() and 0 < int(sid) <= len(reg.schemas):
                return 200, {"schema": reg.schemas[int(sid) - 1]}
            case "GET", ["schemas", "ids", _]:
                return 404, {"error_code": 40403, "message": "Schema not found"}
            case "GET", ["subjects"]:
                return 200, sorted(reg.subjects)
            case "GET", ["subjects", subject, "versions"] if subject in reg.subjects:
                return 200, list(range(1, len(reg.subjects[subject]) + 1))
            case "GET", ["subjects", subject, "versions", v] if subject in reg.subjects:
                versions = reg.subjects[subject]
                n = len(versions) if v in ("latest", "-1") else int(v) if v.isdigit() else 0
                if not 0 < n <= len(versions):
                    return 404, {"error_code": 40402, "message": "Version not found."}
                sid = versions[n - 1]
                return 200, {"subject": subject, "version": n, "id": sid, "schema": reg.schemas[sid - 1]}
            case "GET", ["subjects", *_]:
                return 404, {"error_code": 40401, "message": "Subject not found."}
            case "GET", ["config", *rest]:
                if rest and rest[0] not in reg.config and "defaultToGlobal=true" not in self.path:
                    return 404, {"error_code": 40408, "message": "Subject does not have subject-level config"}
                return 200, {"compatibilityLevel": reg.level(rest[0] if rest else None)}
            case "PUT", ["config", *rest]:
                level = str(body.get("compatibility", "")).upper()
                if level not in LEVELS:
                    return 422, {"error_code": 42203, "message": f"Invalid compatibility level {level}"}
                reg.config[rest[0] if rest else ""] = level
                return 200, {"compatibility": level}
            case "POST", ["compatibility", "subjects", subject, "versions", v]:
                version = None if v in ("latest", "-1") else int(v)
                problems = reg.incompatibilities(subject, json.loads(body["schema"]), version)
                return 200, {"is_compatible": not problems, "messages": problems}
        return 404, {"error_code": 404, "message": f"HTTP 404 Not Found: {method} {'/'.join(parts)}"}


# ---------------------------------------------------------------------- Avro schema resolution


def expand(schema: Any) -> Any:
    """`schema` with named-type references replaced by the (shared) definitions, names made full."""
    return _expand(schema, "", {})


def _full(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _expand(s: Any, ns: str, names: dict[str, Any]) -> Any:
    if isinstance(s, str):
        if s in PRIMITIVES:
            return s
        node = names.get(_full(s, ns)) or names.get(s)
        if node is None:
            raise ValueError(f"unknown type {s!r}")
        return node
    if isinstance(s, list):
        return [_expand(b, ns, names) for b in s]
    kind = s["type"]
    if kind in ("record", "error", "enum", "fixed"):
        full = _full(s["name"], s.get("namespace", ns))
        node: dict[str, Any] = {"type": kind, "name": full, "aliases": [_full(a, ns) for a in s.get("aliases", ())]}
        names[full] = node
        if kind == "fixed":
            node["size"] = s["size"]
        elif kind == "enum":
            node["symbols"], node["default"] = list(s["symbols"]), s.get("default")
        else:
            inner = full.rpartition(".")[0]
            node["fields"] = [{"name": f["name"], "aliases": list(f.get("aliases", ())), "has_default": "default" in f,
                               "type": _expand(f["type"], inner, names)} for f in s["fields"]]
        return node
    if kind == "array":
        return {"type": "array", "items": _expand(s["items"], ns, names)}
    if kind == "map":
        return {"type": "map", "values": _expand(s["values"], ns, names)}
    return _expand(kind, ns, names)  # {"type": "long", "logicalType": ...} or {"type": "<named reference>"}


def _kind(s: Any) -> str:
    return s if isinstance(s, str) else "union" if isinstance(s, list) else s["type"]


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def can_read(reader: Any, writer: Any, path: str = "", seen: set[tuple[int, int]] | None = None) -> list[str]:
    """Why data written with `writer` cannot be read with `reader` (both `expand`ed); empty when it can."""
    seen = set() if seen is None else seen
    rk, wk = _kind(reader), _kind(writer)
    where = path or "/"
    if wk == "union":
        return [p for i, b in enumerate(writer) for p in can_read(reader, b, f"{path}/{i}", seen)]
    if rk == "union":
        if any(not can_read(b, writer, path, set(seen)) for b in reader):
            return []
        return [f"{where}: writer type {wk} matches no branch of the reader's union"]
    if rk in PRIMITIVES or wk in PRIMITIVES:
        if rk == wk or rk in PROMOTIONS.get(wk, ()):
            return []
        return [f"{where}: reader type {rk} cannot read writer type {wk}"]
    if rk != wk:
        return [f"{where}: reader type {rk} cannot read writer type {wk}"]
    if rk == "array":
        return can_read(reader["items"], writer["items"], f"{path}/items", seen)
    if rk == "map":
        return can_read(reader["values"], writer["values"], f"{path}/values", seen)
    names = {_short(reader["name"])} | {_short(a) for a in reader["aliases"]}
    if _short(writer["name"]) not in names:
        return [f"{where}: reader name {reader['name']} does not match writer name {writer['name']}"]
    if rk == "fixed":
        return [] if reader["size"] == writer["size"] else [f"{where}: fixed sizes differ"]
    if rk == "enum":
        missing = set(writer["symbols"]) - set(reader["symbols"])
        return [] if not missing or reader["default"] is not None else [f"{where}: symbols {sorted(missing)} missing"]
    pair = (id(reader), id(writer))
    if pair in seen:
        return []
    seen.add(pair)
    by_name = {f["name"]: f for f in writer["fields"]}
    problems: list[str] = []
    for f in reader["fields"]:
        wf = next((by_name[n] for n in (f["name"], *f["aliases"]) if n in by_name), None)
        if wf is None:
            if not f["has_default"]:
                problems.append(f"{path}/{f['name']}: reader field has no default and is missing in the writer")
        else:
            problems += can_read(f["type"], wf["type"], f"{path}/{f['name']}", seen)
    return problems
