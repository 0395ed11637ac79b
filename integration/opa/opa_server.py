#!/usr/bin/env python3
"""A small OPA REST server for tests, evaluating with OPA's own Go engine.

No OPA server binary can be installed on this project's machines, so this
serves the parts of OPA's REST API that the gateway uses, and evaluates every
query with the real OPA engine from the PyPI package
`opa-golib-python-bindings` (module `opa_bindings`, a ctypes wrapper around
OPA's Go `rego` package built as a shared library).

Endpoints (shaped like OPA's v1 REST API):
  POST /v1/data[/{path}]      body {"input": ...} -> {"result": ...}, or {} when undefined
  GET  /v1/data[/{path}]      optional ?input=<url-encoded JSON>
  PUT  /v1/data/{path}        replace a base document (204)
  DELETE /v1/data/{path}      remove a base document (204)
  PUT  /v1/policies/{id}      body: a Rego module -> {} (400 on parse/compile errors)
  GET  /v1/policies[/{id}]    list / get loaded modules (id and raw text)
  DELETE /v1/policies/{id}    remove a module
  GET  /health                -> {}

Usage:
  python3 opa_server.py --policies DIR [--port 0] [--addr 127.0.0.1]
                        [--token SECRET] [--verbose]

The first line printed on stdout is `listening on <port>`; nothing else goes
to stdout. With --token every request (including /health) must carry
`Authorization: Bearer <token>`, otherwise 401 as OPA answers with token
authentication and a basic authorization policy.

Like OPA 1.x, modules are parsed as Rego v1 (`if`/`contains` required).
"""

import argparse
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from opa_bindings import OpaEngine, OpaError
except ImportError:  # pragma: no cover - reported to the caller
    sys.stderr.write(
        "opa_server.py: the OPA engine bindings are missing; install them with\n"
        "  python3 -m pip install --ignore-requires-python opa-golib-python-bindings==0.4.4\n"
    )
    sys.exit(2)

MSG_EVAL_ERROR = "error(s) occurred while evaluating query"
MSG_COMPILE_ERROR = "error(s) occurred while compiling module(s)"
MSG_PARSE_ERROR = "error(s) occurred while parsing module(s)"
MSG_UNAUTHORIZED = "request rejected by administrative policy"
MSG_INPUT_MISSING = "'input' key missing from the request"


class RequestError(Exception):
    """An error answered to the client as an OPA error document."""

    def __init__(self, status, code, message, errors=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self):
        doc = {"code": self.code, "message": self.message}
        if self.errors:
            doc["errors"] = self.errors
        return doc


def opa_error_details(err):
    return [{"code": err.code, "message": err.message}]


class PolicyStore:
    """Policy modules and base documents; (re)builds OPA engines from them.

    Every change builds a fresh engine holding all modules and data and
    compiles it before it replaces the current one, so a bad module is
    rejected and leaves the served state untouched, as in OPA.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._modules = {}
        self._data = {}
        self._engine = self._build(self._modules, self._data)

    @staticmethod
    def _build(modules, data):
        engine = OpaEngine()
        try:
            for module_id, source in modules.items():
                engine.add_policy(module_id, source)
        except OpaError as err:
            code = MSG_PARSE_ERROR if err.code == "parse_error" else MSG_COMPILE_ERROR
            raise RequestError(400, "invalid_parameter", code, opa_error_details(err))
        try:
            if data:
                engine.add_data(data)
            # Preparing a query compiles every module (unsafe variables,
            # type errors, conflicts): do it now rather than on first use.
            engine.eval_query("true")
        except OpaError as err:
            raise RequestError(400, "invalid_parameter", MSG_COMPILE_ERROR, opa_error_details(err))
        return engine

    def engine(self):
        with self._lock:
            return self._engine

    def modules(self):
        with self._lock:
            return dict(self._modules)

    def put_modules(self, new_modules):
        with self._lock:
            modules = dict(self._modules)
            modules.update(new_modules)
            self._engine = self._build(modules, self._data)
            self._modules = modules

    def delete_module(self, module_id):
        with self._lock:
            if module_id not in self._modules:
                raise RequestError(
                    404, "resource_not_found", f'storage_not_found_error: policy id "{module_id}"'
                )
            modules = dict(self._modules)
            del modules[module_id]
            self._engine = self._build(modules, self._data)
            self._modules = modules

    def put_data(self, path, value):
        with self._lock:
            data = json.loads(json.dumps(self._data))
            if not path:
                if not isinstance(value, dict):
                    raise RequestError(400, "invalid_parameter", "root must be object")
                data = value
            else:
                node = data
                for seg in path[:-1]:
                    nxt = node.get(seg)
                    if not isinstance(nxt, dict):
                        nxt = {}
                        node[seg] = nxt
                    node = nxt
                node[path[-1]] = value
            self._engine = self._build(self._modules, data)
            self._data = data

    def delete_data(self, path):
        with self._lock:
            data = json.loads(json.dumps(self._data))
            node = data
            for seg in path[:-1]:
                node = node.get(seg) if isinstance(node, dict) else None
            if not path or not isinstance(node, dict) or path[-1] not in node:
                raise RequestError(
                    404,
                    "resource_not_found",
                    "storage_not_found_error: /" + "/".join(path) + ": document missing",
                )
            del node[path[-1]]
            self._engine = self._build(self._modules, data)
            self._data = data


def rego_ref(path):
    """data["a"]["b"] for path ["a", "b"]: any segment text is safe."""
    return "data" + "".join("[" + json.dumps(seg) + "]" for seg in path)


def evaluate(store, path, input_doc, has_input):
    """Evaluate data.<path>; returns (defined, value)."""
    query = "result__ = " + rego_ref(path)
    engine = store.engine()
    try:
        rows = engine.eval_query(query, input_doc if has_input else None)
    except OpaError as err:
        raise RequestError(500, "internal_error", MSG_EVAL_ERROR, opa_error_details(err))
    if not rows:
        return False, None
    return True, rows[0].get("result__")


def encode_json(doc, pretty=False):
    """JSON as OPA's Go encoder writes it: compact (or two-space indented),
    UTF-8 unescaped, and <, >, & escaped as \\u003c, \\u003e, \\u0026."""
    if pretty:
        text = json.dumps(doc, indent=2, ensure_ascii=False)
    else:
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def split_path(raw):
    return [urllib.parse.unquote(seg) for seg in raw.split("/") if seg != ""]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "opa-test-server"
    # One write per response and TCP_NODELAY: no Nagle/delayed-ACK stalls
    # on keep-alive connections.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    # -- plumbing -------------------------------------------------------

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("opa_server: " + (fmt % args) + "\n")

    def _send(self, status, doc=None, pretty=False):
        if doc is None:
            body = b""
        else:
            body = (encode_json(doc, pretty) + "\n").encode("utf-8")
        self.send_response(status)
        if doc is not None:
            self.send_header("Content-Type", "application/json")
        if status != 204:  # a 204 carries no Content-Length (RFC 9110)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers up to the empty line
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _authorized(self):
        token = self.server.token
        if token is None:
            return True
        value = self.headers.get("Authorization", "")
        scheme, _, presented = value.partition(" ")
        return scheme.lower() == "bearer" and presented.strip() == token

    def _dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        pretty = query.get("pretty", ["false"])[-1].lower() in ("", "true", "1")
        body = self._read_body() if self.command in ("POST", "PUT", "PATCH") else b""
        try:
            if not self._authorized():
                raise RequestError(401, "unauthorized", MSG_UNAUTHORIZED)
            status, doc = self._route(url.path, query, body)
        except RequestError as err:
            status, doc = err.status, err.body()
        except Exception as err:  # never drop the connection silently
            status, doc = 500, {"code": "internal_error", "message": repr(err)}
        self._send(status, doc, pretty)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch

    # -- routes ---------------------------------------------------------

    def _route(self, path, query, body):
        method = self.command
        store = self.server.store
        if path == "/health" or path == "/health/":
            if method in ("GET", "HEAD"):
                return 200, {}
            raise RequestError(405, "invalid_parameter", "method not allowed")

        if path == "/v1/data" or path.startswith("/v1/data/"):
            segs = split_path(path[len("/v1/data"):])
            if method == "POST":
                has_input, input_doc = False, None
                if body.strip():
                    try:
                        req = json.loads(body)
                    except ValueError as err:
                        raise RequestError(
                            400, "invalid_parameter", f"body contains malformed input document: {err}"
                        )
                    if not isinstance(req, dict):
                        raise RequestError(
                            400, "invalid_parameter", "body contains malformed input document: not an object"
                        )
                    if "input" in req:
                        has_input, input_doc = True, req["input"]
                return 200, self._data_response(store, segs, input_doc, has_input, warn=not has_input)
            if method in ("GET", "HEAD"):
                has_input, input_doc = False, None
                if "input" in query:
                    try:
                        input_doc = json.loads(query["input"][-1])
                        has_input = True
                    except ValueError as err:
                        raise RequestError(400, "invalid_parameter", f"invalid input parameter: {err}")
                return 200, self._data_response(store, segs, input_doc, has_input, warn=False)
            if method == "PUT":
                try:
                    value = json.loads(body) if body.strip() else None
                except ValueError as err:
                    raise RequestError(400, "invalid_parameter", str(err))
                store.put_data(segs, value)
                return 204, None
            if method == "DELETE":
                store.delete_data(segs)
                return 204, None
            raise RequestError(405, "invalid_parameter", "method not allowed")

        if path == "/v1/policies" or path.startswith("/v1/policies/"):
            module_id = urllib.parse.unquote(path[len("/v1/policies/"):]) if path != "/v1/policies" else ""
            if method == "GET":
                modules = store.modules()
                if not module_id:
                    return 200, {"result": [{"id": k, "raw": v} for k, v in sorted(modules.items())]}
                if module_id not in modules:
                    raise RequestError(
                        404, "resource_not_found", f'storage_not_found_error: policy id "{module_id}"'
                    )
                return 200, {"result": {"id": module_id, "raw": modules[module_id]}}
            if method == "PUT" and module_id:
                try:
                    source = body.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise RequestError(400, "invalid_parameter", str(err))
                store.put_modules({module_id: source})
                return 200, {}
            if method == "DELETE" and module_id:
                store.delete_module(module_id)
                return 200, {}
            raise RequestError(405, "invalid_parameter", "method not allowed")

        raise RequestError(404, "resource_not_found", f"no handler for {method} {path}")

    @staticmethod
    def _data_response(store, segs, input_doc, has_input, warn):
        defined, value = evaluate(store, segs, input_doc, has_input)
        doc = {"result": value} if defined else {}
        if warn:
            doc["warning"] = {"code": "api_usage_warning", "message": MSG_INPUT_MISSING}
        return doc


def load_directory(store, directory):
    """Load every *.rego file (module id: its path relative to DIR) and every
    data.json (merged at its directory's path), recursively, as `opa run DIR`."""
    modules = {}
    data_files = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, directory)
            if name.endswith(".rego"):
                with open(full, encoding="utf-8") as f:
                    modules[rel.replace(os.sep, "/")] = f.read()
            elif name == "data.json":
                data_files.append((os.path.relpath(root, directory), full))
    if modules:
        store.put_modules(modules)
    for rel_dir, full in data_files:
        with open(full, encoding="utf-8") as f:
            value = json.load(f)
        segs = [] if rel_dir == "." else rel_dir.split(os.sep)
        if segs:
            store.put_data(segs, value)
        else:
            for key, val in value.items():
                store.put_data([key], val)
    return sorted(modules)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", metavar="DIR", help="directory of *.rego files (and data.json) to load")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--addr", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every request")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    store = PolicyStore()
    if args.policies:
        if not os.path.isdir(args.policies):
            sys.stderr.write(f"opa_server.py: --policies {args.policies}: not a directory\n")
            return 2
        try:
            loaded = load_directory(store, args.policies)
        except RequestError as err:
            sys.stderr.write(f"opa_server.py: loading {args.policies} failed: {json.dumps(err.body())}\n")
            return 1
        if args.verbose:
            sys.stderr.write(f"opa_server: loaded {', '.join(loaded) or 'no modules'}\n")

    httpd = Server((args.addr, args.port), Handler)
    httpd.store = store
    httpd.token = args.token
    httpd.verbose = args.verbose
    sys.stdout.write(f"listening on {httpd.server_address[1]}\n")
    sys.stdout.flush()
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
