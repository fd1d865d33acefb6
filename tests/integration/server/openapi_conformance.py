#!/usr/bin/python3
"""The HTTP API against kernel_host/api/openapi.yaml.

1. Every route the handlers register (routes.add / add_websocket in kernel_host/api/*.cpp) is
   described in the document, with its method.
2. A real `kernel-host serve` is exercised over every described route (success and error cases);
   each answer's status must be documented for the operation, and a JSON body must validate
   against the schema documented for that status (Debian's python3-jsonschema, OpenAPI 3.0
   `nullable` translated). SSE events of /api/execute/code are checked against
   components.schemas.execution_event when the document has it.

Usage: openapi_conformance.py KERNEL_HOST_BIN SOURCE_DIR
"""
import copy
import glob
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile

import jsonschema
import yaml

BIN, SRC = sys.argv[1], sys.argv[2]
SPEC = yaml.safe_load(open(os.path.join(SRC, "kernel_host/api/openapi.yaml")))
failures = []


def fail(text):
    failures.append(text)
    print("FAIL:", text)


# ---- 1. coverage of the registered routes ------------------------------------------------------
def registered_routes():
    found = set()
    for path in glob.glob(os.path.join(SRC, "kernel_host/api/*.cpp")):
        text = open(path).read()
        for method, route in re.findall(r'\.add\(\s*"([A-Z]+)"\s*,\s*"([^"]+)"', text):
            found.add((method.lower(), route))
        for route in re.findall(r'add_websocket\(\s*"([^"]+)"', text):
            found.add(("get", route))
    return found


routes = registered_routes()
if len(routes) < 10:
    fail(f"found only {len(routes)} registered routes: the scan is broken")
for method, route in sorted(routes):
    item = SPEC["paths"].get(route)
    if item is None:
        fail(f"{method.upper()} {route} is served but not described in openapi.yaml")
    elif method not in item:
        fail(f"{method.upper()} {route}: the path is described but not this method")
for route, item in SPEC["paths"].items():
    for method in item:
        if method in ("get", "post", "put", "patch", "delete") and (method, route) not in routes:
            fail(f"{method.upper()} {route} is described but no handler registers it")


# ---- 2. responses against their schemas --------------------------------------------------------
def openapi_to_jsonschema(node):
    """OpenAPI 3.0 schema objects -> JSON Schema (nullable -> a null alternative)."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: openapi_to_jsonschema(v) for k, v in node.items() if not k.startswith("x-")}
    if out.pop("nullable", False):
        return {"anyOf": [out, {"type": "null"}]}
    return out


DOC = openapi_to_jsonschema(copy.deepcopy(SPEC))


def schema_for(ref_or_schema):
    # Resolve against the whole document so "#/components/..." references work.
    return {**ref_or_schema, "components": DOC.get("components", {})} if isinstance(ref_or_schema, dict) else ref_or_schema


def response_spec(route, method, status):
    op = DOC["paths"].get(route, {}).get(method)
    if op is None:
        return None
    responses = op.get("responses", {})
    r = responses.get(str(status)) or responses.get("default")
    while isinstance(r, dict) and "$ref" in r:
        parts = r["$ref"].lstrip("#/").split("/")
        r = DOC
        for p in parts:
            r = r[p]
    return r


checked = 0


def check(route, method, status, body, content_type):
    global checked
    checked += 1
    spec = response_spec(route, method, status)
    label = f"{method.upper()} {route} -> {status}"
    if spec is None:
        fail(f"{label}: status not documented")
        return
    content = spec.get("content") or {}
    if "application/json" in (content_type or ""):
        schema = (content.get("application/json") or {}).get("schema")
        if schema is None:
            fail(f"{label}: answered JSON but no JSON schema is documented (content: {list(content)})")
            return
        try:
            jsonschema.validate(json.loads(body), schema_for(schema))
        except jsonschema.ValidationError as e:
            fail(f"{label}: {e.message} at {list(e.absolute_path)}")
    elif content and body and not any(ct.split(";")[0] in (content_type or "") for ct in content):
        fail(f"{label}: content type {content_type}, documented {list(content)}")


daemon = None
data_dir = tempfile.mkdtemp(prefix="kh-openapi-")
daemon = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--python-pool", "0"],
                          stdout=subprocess.PIPE, text=True)
port = None
for line in daemon.stdout:
    m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if m:
        port = int(m.group(1))
        break
assert port, "the daemon did not start"


def call(method, path, route, body=None, raw=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    h = {"Content-Type": "application/json"} if data is not None else {}
    h.update(headers or {})
    conn.request(method, path, body=data, headers=h)
    res = conn.getresponse()
    text = res.read().decode("utf-8", "replace")
    check(route, method.lower(), res.status, text, res.getheader("Content-Type"))
    conn.close()
    return res.status, text


try:
    for path in ("/api/ping", "/api/interpreter/health", "/api/version", "/api", "/api/status", "/api/kernelspecs"):
        call("GET", path, path)
    specs = json.loads(call("GET", "/api/kernelspecs", "/api/kernelspecs")[1])
    name = specs["default"]
    call("GET", f"/api/kernelspecs/{name}", "/api/kernelspecs/{name}")
    call("GET", "/api/kernelspecs/no-such-kernel", "/api/kernelspecs/{name}")
    call("GET", f"/kernelspecs/{name}/kernel.json", "/kernelspecs/{name}/{file}")
    call("GET", f"/kernelspecs/{name}/missing.png", "/kernelspecs/{name}/{file}")

    # code-interpreter API
    call("POST", "/api/contexts", "/api/contexts", raw="{not json")
    call("POST", "/api/contexts", "/api/contexts", body={"language": "cobol"})
    status, text = call("POST", "/api/contexts", "/api/contexts", body={"language": "python", "variables": {"a": 1}})
    ctx = json.loads(text)["contextId"]
    call("GET", "/api/contexts", "/api/contexts")
    call("GET", f"/api/contexts/{ctx}", "/api/contexts/{id}")
    call("GET", "/api/contexts/nope", "/api/contexts/{id}")
    call("POST", f"/api/contexts/{ctx}/variables", "/api/contexts/{id}/variables", body={"set": {"b": [1, 2]}, "get": ["a", "b"]})
    call("POST", f"/api/contexts/{ctx}/variables", "/api/contexts/{id}/variables", body={"set": 3})
    call("POST", f"/api/contexts/{ctx}/input", "/api/contexts/{id}/input", body={"value": "x"})
    call("POST", f"/api/contexts/{ctx}/interrupt", "/api/contexts/{id}/interrupt")
    events_schema = DOC.get("components", {}).get("schemas", {}).get("execution_event")
    for code in ("print(a)\n1+1", "1/0"):
        status, text = call("POST", "/api/execute/code", "/api/execute/code", body={"context_id": ctx, "code": code})
        events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
        if not events or events[-1]["type"] not in ("execution_complete", "error"):
            fail(f"execute {code!r}: stream did not end with execution_complete or error: {text[:300]}")
        if sum(e["type"] in ("execution_complete",) for e in events) + (events[-1]["type"] == "error") != 1:
            fail(f"execute {code!r}: more than one terminal event")
        if events_schema:
            for e in events:
                try:
                    jsonschema.validate(e, schema_for(events_schema))
                except jsonschema.ValidationError as err:
                    fail(f"execute event {e.get('type')}: {err.message}")
    call("POST", "/api/execute/code", "/api/execute/code", body={"context_id": ctx})
    call("POST", "/api/execute/code", "/api/execute/code", body={"context_id": "nope", "code": "1"})
    call("POST", f"/api/contexts/{ctx}/restart", "/api/contexts/{id}/restart")
    call("DELETE", f"/api/contexts/{ctx}", "/api/contexts/{id}")
    call("DELETE", f"/api/contexts/{ctx}", "/api/contexts/{id}")

    # Jupyter kernels
    status, text = call("POST", "/api/kernels", "/api/kernels", body={"name": name})
    kid = json.loads(text)["id"]
    call("POST", "/api/kernels", "/api/kernels", body={"name": "no-such-kernel"})
    call("GET", "/api/kernels", "/api/kernels")
    call("GET", f"/api/kernels/{kid}", "/api/kernels/{id}")
    call("POST", f"/api/kernels/{kid}/interrupt", "/api/kernels/{id}/interrupt")
    call("POST", f"/api/kernels/{kid}/restart", "/api/kernels/{id}/restart")
    ws_headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    call("GET", "/api/kernels/nope/channels", "/api/kernels/{id}/channels", headers=ws_headers)
    call("DELETE", f"/api/kernels/{kid}", "/api/kernels/{id}")
    call("GET", f"/api/kernels/{kid}", "/api/kernels/{id}")
    call("POST", "/api/kernels/nope/restart", "/api/kernels/{id}/restart")

    # notebook sessions
    status, text = call("POST", "/api/sessions", "/api/sessions",
                        body={"path": "a.ipynb", "name": "a.ipynb", "type": "notebook", "kernel": {"name": name}})
    sid = json.loads(text)["id"]
    call("GET", "/api/sessions", "/api/sessions")
    call("GET", f"/api/sessions/{sid}", "/api/sessions/{id}")
    call("PATCH", f"/api/sessions/{sid}", "/api/sessions/{id}", body={"path": "b.ipynb"})
    call("PATCH", f"/api/sessions/{sid}", "/api/sessions/{id}", body={"kernel": 5})
    call("DELETE", f"/api/sessions/{sid}", "/api/sessions/{id}")
    call("GET", f"/api/sessions/{sid}", "/api/sessions/{id}")
    # sandboxes, sessions, commands, files, processes (sandbox_api.cpp)
    sb = "/sandboxes/conf"
    call("POST", "/api/sandboxes", "/api/sandboxes", body={"id": "conf", "limits": {"maxProcesses": 256}})
    call("POST", "/api/sandboxes", "/api/sandboxes", body={"id": "conf"})
    call("POST", "/api/sandboxes", "/api/sandboxes", body={"network": "wifi"})
    call("GET", "/api/sandboxes", "/api/sandboxes")
    call("GET", "/api/sandboxes/conf", "/api/sandboxes/{id}")
    call("GET", "/api/sandboxes/nope", "/api/sandboxes/{id}")
    call("POST", sb + "/api/session/create", "/api/session/create", body={"id": "s1", "env": {"A": "1"}})
    call("POST", sb + "/api/session/create", "/api/session/create", body={"id": "s1"})
    call("GET", sb + "/api/session/list", "/api/session/list")
    call("POST", sb + "/api/execute", "/api/execute", body={"command": "echo $A; printf '\\377'", "sessionId": "s1"})
    call("POST", sb + "/api/execute", "/api/execute", body={"command": ""})
    call("POST", sb + "/api/execute", "/api/execute", body={"command": "sleep 5", "timeoutMs": 100})
    call("POST", sb + "/api/execute", "/api/execute", body={"command": "exit 3", "sessionId": "s1"})
    call("POST", sb + "/api/execute", "/api/execute", body={"command": "sleep 1", "background": True})
    call("POST", sb + "/api/execute/stream", "/api/execute/stream", body={"command": "echo x"})
    call("POST", sb + "/api/execute/stream", "/api/execute/stream", body={"command": 5})
    call("POST", sb + "/api/session/delete", "/api/session/delete", body={"sessionId": "s1"})
    call("POST", sb + "/api/session/delete", "/api/session/delete", body={"sessionId": "s1"})
    call("POST", sb + "/api/session/delete", "/api/session/delete", body={})
    call("POST", sb + "/api/write", "/api/write", body={"path": "d/a.txt", "content": "hi"})
    call("POST", sb + "/api/write", "/api/write", body={"path": "/usr/x", "content": "hi"})
    call("POST", sb + "/api/write", "/api/write", body={"path": "b.bin", "content": "%%%", "encoding": "base64"})
    call("POST", sb + "/api/read", "/api/read", body={"path": "d/a.txt"})
    call("POST", sb + "/api/read", "/api/read", body={"path": "missing"})
    call("POST", sb + "/api/read", "/api/read", body={"path": "../../etc/shadow"})
    call("POST", sb + "/api/read/stream", "/api/read/stream", body={"path": "d/a.txt"})
    call("POST", sb + "/api/read/stream", "/api/read/stream", body={})
    call("POST", sb + "/api/exists", "/api/exists", body={"path": "d/a.txt"})
    call("POST", sb + "/api/exists", "/api/exists", body={"path": "/proc/1/root"})
    call("POST", sb + "/api/list-files", "/api/list-files", body={"path": "/workspace", "options": {"recursive": True}})
    call("POST", sb + "/api/list-files", "/api/list-files", body={"path": "/workspace/nope"})
    call("POST", sb + "/api/list-files", "/api/list-files", body={"path": "d/a.txt"})
    call("POST", sb + "/api/mkdir", "/api/mkdir", body={"path": "e/f", "recursive": True})
    call("POST", sb + "/api/mkdir", "/api/mkdir", body={"path": "e/f"})
    call("POST", sb + "/api/mkdir", "/api/mkdir", body={"path": "x/y/z"})
    call("POST", sb + "/api/rename", "/api/rename", body={"oldPath": "d/a.txt", "newPath": "d/b.txt"})
    call("POST", sb + "/api/rename", "/api/rename", body={"oldPath": "d/none", "newPath": "d/c.txt"})
    call("POST", sb + "/api/move", "/api/move", body={"sourcePath": "d/b.txt", "destinationPath": "e/b.txt"})
    call("POST", sb + "/api/move", "/api/move", body={"sourcePath": "d/b.txt"})
    call("POST", sb + "/api/delete", "/api/delete", body={"path": "e"})
    call("POST", sb + "/api/delete", "/api/delete", body={"path": "e", "recursive": True})
    call("POST", sb + "/api/delete", "/api/delete", body={"path": "e"})
    call("POST", sb + "/api/delete", "/api/delete", body={"path": "/etc/passwd"})
    call("PUT", sb + "/api/files/raw?path=raw.bin", "/api/files/raw", raw="\x00\x01raw")
    call("PUT", sb + "/api/files/raw", "/api/files/raw", raw="x")
    call("GET", sb + "/api/files/raw?path=raw.bin", "/api/files/raw")
    call("GET", sb + "/api/files/raw?path=nothing", "/api/files/raw")
    call("POST", sb + "/api/process/start", "/api/process/start", body={"command": "echo out; sleep 30", "processId": "p1"})
    call("POST", sb + "/api/process/start", "/api/process/start", body={"command": "echo dup", "processId": "p1"})
    call("POST", sb + "/api/process/start", "/api/process/start", body={"command": " "})
    call("GET", sb + "/api/process/list", "/api/process/list")
    call("GET", sb + "/api/process/p1", "/api/process/{id}")
    call("GET", sb + "/api/process/nope", "/api/process/{id}")
    call("GET", sb + "/api/process/p1/logs", "/api/process/{id}/logs")
    call("GET", sb + "/api/process/nope/logs", "/api/process/{id}/logs")
    call("GET", sb + "/api/process/nope/stream", "/api/process/{id}/stream")
    call("POST", sb + "/api/port-watch", "/api/port-watch", body={"port": 1, "mode": "tcp", "timeoutMs": 300})
    call("POST", sb + "/api/port-watch", "/api/port-watch", body={"port": 70000})
    call("DELETE", sb + "/api/process/p1?signal=SIGBOGUS", "/api/process/{id}")
    call("DELETE", sb + "/api/process/p1", "/api/process/{id}")
    call("GET", sb + "/api/process/p1/stream", "/api/process/{id}/stream")
    call("DELETE", sb + "/api/process/nope", "/api/process/{id}")
    call("DELETE", sb + "/api/process/kill-all", "/api/process/kill-all")
    call("DELETE", "/api/sandboxes/conf", "/api/sandboxes/{id}")
    call("DELETE", "/api/sandboxes/conf", "/api/sandboxes/{id}")
finally:
    daemon.terminate()
    daemon.wait(timeout=60)

print(f"{len(routes)} routes described; {checked} responses checked; {len(failures)} failures")
sys.exit(1 if failures else 0)
