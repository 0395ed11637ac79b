"""Rendering the chart offline, shared by validate.py and wiring.py.

Rendering uses PyPI helm-python-sdk (import name helm_python): ctypes bindings
to libhelm_c, Helm v4's Go SDK built as a C library and shipped inside the
wheel, so no helm binary, Go toolchain or network is involved. Its public
Chart.render() takes values, release name and namespace; the native
helm_render behind it also accepts "api_versions" and "kube_version" in its
options JSON (what `helm template --api-versions/--kube-version` set), which
render() below passes to render the ServiceMonitor case.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

import helm_python as helm
from helm_python import _native

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "choreo-connect"
PRODUCTION_VALUES = CHART / "examples" / "production-values.yaml"
REDIS_VALUES = Path(__file__).resolve().parent / "redis-values.yaml"
MODULE_VALUES = Path(__file__).resolve().parent / "module-values.yaml"
GOLDEN = Path(__file__).resolve().parent / "golden"
RELEASE = "cc"
NAMESPACE = "gateway"
MONITORING_API = "monitoring.coreos.com/v1"


def merge(base: dict, over: dict) -> dict:
    """Helm's value coalescing for our purposes: maps merge, the rest replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def values(files: list[Path] = (), sets: list[str] = ()) -> dict[str, Any]:
    """User values as `-f file ... --set a=b ...` make them."""
    out: dict[str, Any] = {}
    for f in files:
        out = merge(out, helm.values_from_yaml(Path(f).read_text()))
    for s in sets:
        out = merge(out, helm.parse_set_string(s))
    return out


def render(
    user_values: dict[str, Any] | None = None,
    *,
    api_versions: list[str] = (),
    kube_version: str | None = None,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included), like `helm template`."""
    opts: dict[str, Any] = {"name": release, "namespace": namespace}
    if api_versions:
        opts["api_versions"] = list(api_versions)
    if kube_version:
        opts["kube_version"] = kube_version
    with helm.Chart.load(CHART) as chart:
        out = _native.call_string(
            "helm_render", chart._raw(), json.dumps(user_values or {}), json.dumps(opts)
        )
    return json.loads(out)


def manifests(rendered: dict[str, str]) -> list[tuple[str, dict]]:
    """(template path, object) of every Kubernetes object, in template order."""
    out = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(rendered[path]):
            if doc:
                out.append((path, doc))
    return out


def stream(rendered: dict[str, str]) -> str:
    """The render as one YAML stream (`helm template` style), for goldens."""
    parts = []
    for path in sorted(rendered):
        text = rendered[path].strip("\n")
        if not text.strip():
            continue
        parts.append(f"# Source: {path}\n{text}\n")
    return "---\n".join(parts)


_DATA_LINE = re.compile(r"^(  [A-Za-z0-9._-]+): \S+$")


def mask(text: str) -> str:
    """Replaces what differs on every render: the Secrets' data (generated
    certificates, keys, passwords), checksums derived from them and the
    certificate's expiry time."""
    out = []
    for doc in re.split(r"(?m)^(?=---\n)", text):
        is_secret = re.search(r"(?m)^kind: Secret$", doc) is not None
        in_data = False
        lines = []
        for line in doc.split("\n"):
            if is_secret:
                if line in ("data:", "stringData:"):
                    in_data = True
                elif in_data and not line.startswith("  "):
                    in_data = False
                elif in_data and _DATA_LINE.match(line):
                    line = _DATA_LINE.sub(r"\1: MASKED", line)
            line = re.sub(r"(checksum/tls: )[0-9a-f]{64}$", r"\1MASKED", line)
            line = re.sub(r'(choreo-connect/not-after: )"\d+"$', r'\1"MASKED"', line)
            lines.append(line)
        out.append("\n".join(lines))
    return "".join(out)


def app_version() -> str:
    with helm.Chart.load(CHART) as chart:
        return str(chart.metadata.get("appVersion") or chart.metadata.get("app_version"))


def cargo_version() -> str:
    text = (ROOT / "Cargo.toml").read_text()
    m = re.search(r'(?m)^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', text)
    if not m:
        m = re.search(r'(?m)^version\s*=\s*"([^"]+)"', text)
    return m.group(1)


def find(objs: list[tuple[str, dict]], kind: str, name: str | None = None) -> list[dict]:
    return [o for _, o in objs if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]


def env_of(container: dict, objs: list[tuple[str, dict]], pod_name: str = "pod", namespace: str = NAMESPACE) -> dict[str, str]:
    """A container's environment as the kubelet builds it, with valueFrom
    references resolved from the rendered (or given) Secrets and ConfigMaps."""
    import base64

    out: dict[str, str] = {}
    for e in container.get("env", []) or []:
        name = e["name"]
        if "value" in e:
            out[name] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: out.get(m.group(1), m.group(0)), str(e["value"]))
            continue
        src = e.get("valueFrom", {})
        if "secretKeyRef" in src:
            ref = src["secretKeyRef"]
            secrets = find(objs, "Secret", ref["name"])
            if not secrets:
                if ref.get("optional"):
                    continue
                raise LookupError(f"env {name}: Secret {ref['name']} is not in the render")
            s = secrets[0]
            if ref["key"] in (s.get("stringData") or {}):
                out[name] = s["stringData"][ref["key"]]
            elif ref["key"] in (s.get("data") or {}):
                out[name] = base64.b64decode(s["data"][ref["key"]]).decode()
            elif not ref.get("optional"):
                raise LookupError(f"env {name}: Secret {ref['name']} has no key {ref['key']}")
        elif "configMapKeyRef" in src:
            ref = src["configMapKeyRef"]
            cms = find(objs, "ConfigMap", ref["name"])
            if not cms or ref["key"] not in (cms[0].get("data") or {}):
                if ref.get("optional"):
                    continue
                raise LookupError(f"env {name}: ConfigMap {ref['name']} key {ref['key']} is not in the render")
            out[name] = cms[0]["data"][ref["key"]]
        elif "fieldRef" in src:
            path = src["fieldRef"]["fieldPath"]
            known = {"metadata.name": pod_name, "metadata.namespace": namespace}
            if path not in known:
                raise LookupError(f"env {name}: fieldRef {path} is not emulated")
            out[name] = known[path]
        else:
            raise LookupError(f"env {name}: valueFrom {list(src)} is not emulated")
    return out

