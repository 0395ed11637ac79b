#!/usr/bin/env python3
"""The chart's wiring, proven on the Docker engine (no cluster).

Renders charts/choreo-connect in two scenarios, each with test-only
settings on top, and runs every Deployment's pods (spec.replicas of them)
the way a kubelet would, from the rendered objects alone:

  * default: the chart's default values (one gateway-runtime pod, rate
    limits counted in memory);
  * redis: integration/chart/redis-values.yaml: the chart's Redis (password
    from a Secret the test creates, as a user would) and two gateway-runtime
    pods, i.e. two enforcers counting rate limits together in it;
  * module: integration/chart/module-values.yaml: enforcerMode module, the
    router container decides with the enforcer's dynamic module.

CHART_WIRING_SCENARIOS (comma-separated, default `default,redis,module`)
picks them.
Each pod:

  * images: the rendered references. The image tags are set at render time
    (`--set wso2.deployment.<component>.imageTag=$CC_IMAGE_TAG`, default
    `test`) so the pods run the local `choreo-connect-*:test` of
    `make test-images` (`latest`: those of `make images`); the registry
    stays the chart's default (none). The chart's Redis runs its default
    image, redis:7.0-bookworm (docker-compose.yaml's; where no registry
    answers, the local stand-in scripts/images.sh builds);
  * command/args ($(VAR) expanded), env (valueFrom secretKeyRef /
    configMapKeyRef resolved from the rendered objects, Service link variables
    unless enableServiceLinks is false), resources limits;
  * volumes: ConfigMap and Secret volumes written the kubelet's way (a
    ..data symlink to a timestamped folder, items, defaultMode, owner group =
    fsGroup) and bind-mounted read-only at the mount paths (subPath: the one
    file); emptyDir as a tmpfs; a PersistentVolumeClaim as a fresh Docker
    volume (no copy of the image's folder) with fsGroup's ownership;
  * securityContext: runAsUser/runAsGroup -> --user, fsGroup and
    supplementalGroups -> --group-add, readOnlyRootFilesystem -> --read-only,
    capabilities, allowPrivilegeEscalation false -> no-new-privileges,
    runAsNonRoot checked;
  * networking: one Docker network per scenario; the pod's first container
    carries each selecting Service's names as network aliases (the pods of
    one Service share them: Docker's DNS answers with all) and publishes the
    Services' target ports on 127.0.0.1; the pod's other containers share its network
    namespace (--network container:<first>);
  * probes: startup, readiness and liveness probes run as a kubelet runs
    them (exec in the container; httpGet / tcpSocket to the pod's address,
    from another container on the network) until the pod is ready.

The sample API comes in as Kubernetes users bring API projects: a ConfigMap
(made here from docker/compose/artifacts/apis, as `kubectl create configmap`
would) mounted into the adapter's /home/wso2/artifacts/apis through the
chart's wso2.deployment.volumeConfigs; the redis scenario adds a project
`Limited` whose secured GET /items has `x-throttling-tier: 10PerDay`. The
sample backend runs as `backend`, as in docker-compose.yaml.

Then, through the router's published HTTP/HTTPS ports (Host: the rendered
config's vhost / systemHost): a public resource answers 200, a secured one
without a token 401 with error code 900901, a /testkey token (password from
the rendered Secret; TLS verified against the rendered CA) makes it 200; the
chart's `helm test` pod passes; the Envoy admin port is not reachable from
the network. In the redis scenario, 30 requests with the token to the
10PerDay resource, alternating between the two pods' routers, give exactly
10 answers 200 and 20 answers 429 (each enforcer counting alone would admit
up to 20); both enforcers' metrics show calls to Redis and no store errors
or failure-mode decisions, and the counters are in Redis under the
configured keyPrefix. Everything is removed at the end of each scenario; on
a failure the logs of all containers are printed first.

Without a Docker engine it prints "SKIPPED: ..." and exits 0.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
from pathlib import Path

import chartlib as cl

TAG = os.environ.get("CC_IMAGE_TAG", "test")
# Docker names and labels of the running scenario (set by run_scenario).
PREFIX = f"ccw{os.getpid()}"
LABEL = f"cc-chart-wiring={PREFIX}"
SCENARIO = ""
BACKEND_IMAGE = f"choreo-connect-sample-backend:{TAG}"
# Scenario -> values files (on top of the chart's defaults).
SCENARIOS = {"default": [], "redis": [cl.REDIS_VALUES], "module": [cl.MODULE_VALUES]}
PROBER_IMAGE = f"choreo-connect-router:{TAG}"  # has bash, for httpGet/tcpSocket probes
APIS = cl.ROOT / "docker" / "compose" / "artifacts" / "apis"
READY_TIMEOUT = float(os.environ.get("CHART_WIRING_READY_TIMEOUT", "150"))
RESULTS: list[tuple[str, bool]] = []


def log(msg: str) -> None:
    print(msg, flush=True)


def docker(*args: str, check: bool = True, timeout: float = 120, capture: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(["docker", *args], capture_output=capture, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise RuntimeError(f"docker {' '.join(shlex.quote(a) for a in args[:6])} ...: exit {out.returncode}: "
                           f"{(out.stderr or out.stdout).strip()}")
    return out


class Failed(Exception):
    """A check failed (already reported)."""


def result(name: str, ok: bool, detail: str = "") -> None:
    name = f"[{SCENARIO}] {name}" if SCENARIO else name
    RESULTS.append((name, ok))
    log(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""))
    if not ok:
        raise Failed(f"{name}: {detail}")


def eventually(what: str, fn, timeout: float, interval: float = 1.0):
    """fn() until it returns a value that is not None, for at most timeout s."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v is not None:
                return v
        except Exception as e:  # noqa: BLE001 - retried, the last one is reported
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s" + (f" (last: {last})" if last else ""))
        time.sleep(interval)


# --- the render -------------------------------------------------------------


# An API project whose secured GET /items allows 10 requests a day (the
# redis scenario): API Manager's built-in tier, as docker-compose's test uses.
LIMITED_API = "/limited/1.0.0/items"
LIMITED_PROJECT = {
    "limited/api.yaml": """type: api
version: v4.2.0
data:
  name: Limited
  version: 1.0.0
  context: /limited
  type: HTTP
  endpointConfig:
    endpoint_type: http
    production_endpoints:
      url: http://backend:2383
""",
    "limited/Definitions/swagger.yaml": """openapi: 3.0.1
info:
  title: Limited
  version: 1.0.0
paths:
  /items:
    get:
      summary: Secured, 10 requests a day for all gateway-runtime pods together
      x-throttling-tier: 10PerDay
""",
}
# The Secret redis-values.yaml names (throttling.redis.passwordSecret).
REDIS_SECRET = "cc-redis-auth"


def sample_apis_configmap(extra: dict[str, str] | None = None) -> tuple[dict, list[dict]]:
    """The sample API projects (and `extra` files, path -> text) as a
    ConfigMap, and the volume items laying them out as folders again
    (ConfigMap keys hold no '/')."""
    files = {f.relative_to(APIS).as_posix(): f.read_text() for f in APIS.rglob("*") if f.is_file()}
    files.update(extra or {})
    data, items = {}, []
    for rel in sorted(files):
        key = rel.replace("/", "__")
        data[key] = files[rel]
        items.append({"key": key, "path": rel})
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sample-apis"}, "data": data}
    return cm, items


def render(scenario: str) -> tuple[list[tuple[str, dict]], dict]:
    cm, items = sample_apis_configmap(LIMITED_PROJECT if scenario == "redis" else None)
    test_values = {"wso2": {"deployment": {"volumeConfigs": [{
        "name": "sample-apis",
        "resource": {"kind": "ConfigMap", "name": "sample-apis", "items": items},
        "mount": {"container": "adapter", "path": "/home/wso2/artifacts/apis", "readOnly": True},
    }]}}}
    sets = [f"wso2.deployment.adapter.imageTag={TAG},"
            f"wso2.deployment.gatewayRuntime.enforcer.imageTag={TAG},"
            f"wso2.deployment.gatewayRuntime.router.imageTag={TAG}"]
    vals = cl.merge(test_values, cl.values(SCENARIOS[scenario], sets=sets))
    objs = cl.manifests(cl.render(vals))
    objs.append(("(created by the test)", cm))
    if scenario == "redis":
        # The user's Secret with the Redis password (URL-safe, as values.yaml asks).
        objs.append(("(created by the test)", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": REDIS_SECRET},
            "type": "Opaque", "stringData": {"password": secrets.token_hex(16)}}))
    return objs, vals


# --- pods -------------------------------------------------------------------


def selected(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class Pod:
    def __init__(self, name: str, spec: dict, labels: dict, objs, root: Path, services: list[dict]):
        self.name, self.spec, self.labels, self.objs = name, spec, labels, objs
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.services = [s for s in services if selected(s["spec"].get("selector", {}), labels)]
        self.containers: dict[str, str] = {}  # container name -> docker name
        self.published: dict[tuple[str, str], int] = {}  # (service, port name) -> host port
        self.volumes_made: dict[str, dict] = {}
        self.docker_volumes: list[str] = []
        self.ip = ""

    # security
    def sc(self, c: dict) -> dict:
        pod = self.spec.get("securityContext", {}) or {}
        merged = {k: pod[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile") if k in pod}
        merged.update(c.get("securityContext", {}) or {})
        return merged

    def fs_group(self) -> int | None:
        return (self.spec.get("securityContext") or {}).get("fsGroup")

    # volumes
    def volume(self, name: str) -> dict:
        if name in self.volumes_made:
            return self.volumes_made[name]
        vol = next((v for v in self.spec.get("volumes", []) if v["name"] == name), None)
        if vol is None:
            raise LookupError(f"pod {self.name}: volumeMount of unknown volume {name}")
        if "configMap" in vol or "secret" in vol:
            made = {"kind": "files", "path": self.write_files(vol)}
        elif "emptyDir" in vol:
            users = [c["name"] for c in self.spec["containers"] for m in c.get("volumeMounts", []) if m["name"] == name]
            if len(users) > 1:
                vname = f"{PREFIX}-{self.name}-{name}"[:120]
                docker("volume", "create", "--label", LABEL, vname)
                self.docker_volumes.append(vname)
                made = {"kind": "volume", "name": vname}
            else:
                size = (vol["emptyDir"] or {}).get("sizeLimit")
                made = {"kind": "tmpfs", "size": size}
        elif "persistentVolumeClaim" in vol:
            claim = vol["persistentVolumeClaim"]["claimName"]
            if not cl.find(self.objs, "PersistentVolumeClaim", claim):
                raise LookupError(f"pod {self.name}: PersistentVolumeClaim {claim} is not in the render")
            vname = f"{PREFIX}-pvc-{claim}"
            docker("volume", "create", "--label", LABEL, vname)
            self.docker_volumes.append(vname)
            self.fs_group_volume(vname)
            made = {"kind": "volume", "name": vname}
        else:
            raise LookupError(f"pod {self.name}: volume {name}: type {sorted(vol)} is not emulated")
        self.volumes_made[name] = made
        return made

    def write_files(self, vol: dict) -> Path:
        """A ConfigMap/Secret volume as the kubelet's atomic writer lays it out."""
        if "configMap" in vol:
            src, kind, ref = vol["configMap"], "ConfigMap", vol["configMap"]["name"]
        else:
            src, kind, ref = vol["secret"], "Secret", vol["secret"]["secretName"]
        found = cl.find(self.objs, kind, ref)
        if not found:
            if src.get("optional"):
                found = [{}]
            else:
                raise LookupError(f"pod {self.name}: {kind} {ref} does not exist (the pod would not start)")
        obj = found[0]
        files: dict[str, bytes] = {}
        if kind == "ConfigMap":
            files.update({k: v.encode() for k, v in (obj.get("data") or {}).items()})
            files.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        else:
            files.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
            files.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
        default_mode = src.get("defaultMode", 0o644)
        payload: dict[str, tuple[bytes, int]] = {}
        if src.get("items"):
            for it in src["items"]:
                if it["key"] not in files:
                    raise LookupError(f"{kind} {ref} has no key {it['key']}")
                payload[it["path"]] = (files[it["key"]], it.get("mode", default_mode))
        else:
            payload = {k: (v, default_mode) for k, v in files.items()}
        d = self.dir / vol["name"]
        ts = d / "..2026_01_01_00_00_00.000000001"
        ts.mkdir(parents=True)
        gid = self.fs_group() or 0
        for rel, (content, mode) in payload.items():
            f = ts / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(content)
            os.chown(f, 0, gid)
            os.chmod(f, mode)
        for p in [d, ts, *[p for p in ts.rglob("*") if p.is_dir()]]:
            os.chmod(p, 0o755)
        (d / "..data").symlink_to(ts.name)
        for top in sorted({rel.split("/")[0] for rel in payload}):
            (d / top).symlink_to(f"..data/{top}")
        return d

    def fs_group_volume(self, vname: str) -> None:
        """fsGroup on a fresh volume: group-owned by fsGroup, group-writable, setgid."""
        g = self.fs_group()
        if g is None:
            return
        docker("run", "--rm", "--label", LABEL, "--network", "none", "--user", "0:0", "--entrypoint", "/bin/bash",
               "--mount", f"type=volume,src={vname},dst=/v,volume-nocopy", PROBER_IMAGE,
               "-c", f"chgrp -R {int(g)} /v && chmod -R g+rwX /v && find /v -type d -exec chmod g+s {{}} +")

    def mount_args(self, c: dict) -> list[str]:
        args = []
        for m in c.get("volumeMounts", []) or []:
            v = self.volume(m["name"])
            dst = m["mountPath"]
            if v["kind"] == "files":
                src = v["path"]
                if m.get("subPath"):
                    src = Path(os.path.realpath(src / m["subPath"]))
                    if not src.exists():
                        raise LookupError(f"{c['name']}: subPath {m['subPath']} of volume {m['name']} does not exist")
                args += ["--mount", f"type=bind,src={src},dst={dst},readonly"]  # always read-only in Kubernetes
            elif v["kind"] == "tmpfs":
                opt = f"type=tmpfs,dst={dst},tmpfs-mode=1777"
                if v.get("size"):
                    opt += f",tmpfs-size={quantity_bytes(v['size'])}"
                args += ["--mount", opt]
            else:
                opt = f"type=volume,src={v['name']},dst={dst},volume-nocopy"
                if m.get("subPath"):
                    raise LookupError(f"{c['name']}: subPath on a volume is not emulated")
                if m.get("readOnly"):
                    opt += ",readonly"
                args += ["--mount", opt]
        return args

    # environment
    def env(self, c: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.spec.get("enableServiceLinks", True):
            env.update(service_links(self.objs))
        env.update(cl.env_of(c, self.objs, pod_name=self.name, namespace=cl.NAMESPACE))
        return env

    def run(self, network: str, long_running: bool = True) -> None:
        first = None
        for c in self.spec["containers"]:
            dname = f"{PREFIX}-{self.name}-{c['name']}"
            sc = self.sc(c)
            args = ["run", "-d", "--name", dname, "--label", LABEL]
            if first is None:
                args += ["--network", network, "--hostname", self.name[:63]]
                for s in self.services:
                    n = s["metadata"]["name"]
                    for alias in [n, f"{n}.{cl.NAMESPACE}", f"{n}.{cl.NAMESPACE}.svc", f"{n}.{cl.NAMESPACE}.svc.cluster.local"]:
                        args += ["--network-alias", alias]
                    for p in s["spec"]["ports"]:
                        args += ["-p", f"127.0.0.1::{self.container_port(p['targetPort'])}"]
            else:
                args += ["--network", f"container:{first}"]
            uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
            if uid is not None:
                args += ["--user", f"{uid}:{gid if gid is not None else 0}"]
            if sc.get("runAsNonRoot") and uid in (None, 0):
                img_user = docker("image", "inspect", "-f", "{{.Config.User}}", c["image"]).stdout.strip()
                if uid == 0 or img_user.split(":")[0] in ("", "0", "root"):
                    raise AssertionError(f"{c['name']}: runAsNonRoot, but it would run as root")
            groups = [(self.spec.get("securityContext") or {}).get("fsGroup")]
            groups += (self.spec.get("securityContext") or {}).get("supplementalGroups", []) or []
            for g in groups:
                if g is not None:
                    args += ["--group-add", str(g)]
            if sc.get("readOnlyRootFilesystem"):
                args += ["--read-only"]
            if sc.get("privileged"):
                args += ["--privileged"]
            for cap in (sc.get("capabilities") or {}).get("drop", []) or []:
                args += ["--cap-drop", cap]
            for cap in (sc.get("capabilities") or {}).get("add", []) or []:
                args += ["--cap-add", cap]
            if sc.get("allowPrivilegeEscalation") is False:
                args += ["--security-opt", "no-new-privileges"]
            if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
                args += ["--security-opt", "seccomp=unconfined"]
            limits = (c.get("resources") or {}).get("limits") or {}
            if "memory" in limits:
                args += ["--memory", str(quantity_bytes(limits["memory"]))]
            if "cpu" in limits:
                args += ["--cpus", str(cpu_cores(limits["cpu"]))]
            env = self.env(c)
            for k, v in env.items():
                args += ["-e", f"{k}={v}"]
            if c.get("workingDir"):
                args += ["-w", c["workingDir"]]
            args += self.mount_args(c)
            expand = lambda s: re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), s)
            command = [expand(x) for x in c.get("command", []) or []]
            cargs = [expand(x) for x in c.get("args", []) or []]
            if command:
                args += ["--entrypoint", command[0]]
            args += [c["image"], *command[1:], *cargs]
            docker(*args)
            self.containers[c["name"]] = dname
            if first is None:
                first = dname
        for cname, dname in self.containers.items() if long_running else []:
            state = docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", dname).stdout.split()
            if state[0] != "running":
                raise AssertionError(f"{self.name}/{cname} {state[0]} with exit code {state[1]} right after its start")
        self.ip = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", first).stdout.strip()
        for s in self.services:
            for p in s["spec"]["ports"]:
                cport = self.container_port(p["targetPort"])
                out = docker("port", first, f"{cport}/tcp").stdout.strip().splitlines()
                self.published[(s["metadata"]["name"], p.get("name", str(p["port"])))] = int(out[0].rsplit(":", 1)[1])

    def container_port(self, port) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for c in self.spec["containers"]:
            for p in c.get("ports", []) or []:
                if p.get("name") == port:
                    return int(p["containerPort"])
        raise LookupError(f"pod {self.name}: no container port named {port}")


def quantity_bytes(q) -> int:
    m = re.fullmatch(r"([0-9.]+)([KMGTE]i?|[kmgte]?)", str(q))
    if not m:
        raise ValueError(f"quantity {q}")
    n, unit = float(m.group(1)), m.group(2)
    mult = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}[unit]
    return int(n * mult)


def cpu_cores(q) -> float:
    s = str(q)
    return int(s[:-1]) / 1000 if s.endswith("m") else float(s)


def service_links(objs) -> dict[str, str]:
    """The Docker-links-style variables the kubelet gives every container for
    each Service of the namespace (enableServiceLinks, on by default), with
    stand-in cluster IPs."""
    env = {}
    for i, s in enumerate(sorted(cl.find(objs, "Service"), key=lambda s: s["metadata"]["name"])):
        if s["spec"].get("clusterIP") == "None":
            continue
        ip = f"10.96.0.{10 + i}"
        n = s["metadata"]["name"].upper().replace("-", "_")
        ports = s["spec"]["ports"]
        env[f"{n}_SERVICE_HOST"] = ip
        env[f"{n}_SERVICE_PORT"] = str(ports[0]["port"])
        env[f"{n}_PORT"] = f"tcp://{ip}:{ports[0]['port']}"
        for p in ports:
            proto = p.get("protocol", "TCP")
            if p.get("name"):
                env[f"{n}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
            base = f"{n}_PORT_{p['port']}_{proto}"
            env.update({base: f"{proto.lower()}://{ip}:{p['port']}", f"{base}_PROTO": proto.lower(),
                        f"{base}_PORT": str(p["port"]), f"{base}_ADDR": ip})
    return env


# --- probes -----------------------------------------------------------------


class Prober:
    """Runs httpGet and tcpSocket probes from another container on the
    network, to the pod's address (as the kubelet does: a listener bound to
    loopback fails them)."""

    def __init__(self, network: str):
        self.name = f"{PREFIX}-prober"
        docker("run", "-d", "--name", self.name, "--label", LABEL, "--network", network, "--read-only",
               "--cap-drop", "ALL", "--entrypoint", "/bin/bash", PROBER_IMAGE, "-c", "exec sleep infinity")

    def bash(self, script: str, timeout: float) -> subprocess.CompletedProcess:
        return docker("exec", self.name, "timeout", str(int(timeout)), "/bin/bash", "-c", script, check=False, timeout=timeout + 10)

    def http(self, ip: str, port: int, path: str, host: str = "", timeout: float = 2) -> int:
        script = (
            f'exec 3<>/dev/tcp/{ip}/{port} || exit 97\n'
            f"printf 'GET {path} HTTP/1.1\\r\\nHost: {host or ip}\\r\\nUser-Agent: kube-probe/1.30\\r\\n"
            f"Connection: close\\r\\n\\r\\n' >&3\n"
            'IFS= read -r -t 5 status <&3 || exit 98\n'
            'echo "$status"\n'
        )
        out = self.bash(script, timeout)
        m = re.match(r"HTTP/1\.[01] (\d{3})", out.stdout.strip())
        return int(m.group(1)) if m else 0

    def tcp(self, ip: str, port: int, timeout: float = 2) -> bool:
        return self.bash(f"exec 3<>/dev/tcp/{ip}/{port}", timeout).returncode == 0


def probe_once(pod: Pod, c: dict, probe: dict, prober: Prober) -> tuple[bool, str]:
    t = float(probe.get("timeoutSeconds", 1))
    if "exec" in probe:
        out = docker("exec", pod.containers[c["name"]], *probe["exec"]["command"], check=False, timeout=t + 10)
        return out.returncode == 0, (out.stdout + out.stderr).strip()[-300:]
    if "httpGet" in probe:
        g = probe["httpGet"]
        if g.get("scheme", "HTTP") != "HTTP":
            raise LookupError("httpGet over HTTPS is not emulated")
        host = next((h["value"] for h in g.get("httpHeaders", []) or [] if h["name"].lower() == "host"), "")
        code = prober.http(pod.ip, pod.container_port(g["port"]), g.get("path", "/"), host, t)
        return 200 <= code < 400, f"HTTP {code or 'no answer'}"
    if "tcpSocket" in probe:
        ok = prober.tcp(pod.ip, pod.container_port(probe["tcpSocket"]["port"]), t)
        return ok, "connected" if ok else "refused"
    raise LookupError(f"probe {sorted(probe)} is not emulated")


def wait_ready(pods: list[Pod], prober: Prober) -> None:
    """Startup probes, then readiness, then one liveness round, per container."""
    deadline = time.monotonic() + READY_TIMEOUT
    for pod in pods:
        for c in pod.spec["containers"]:
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = c.get(kind)
                if not probe:
                    continue
                attempts, last = 0, ""
                while True:
                    state = docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", pod.containers[c["name"]]).stdout.strip()
                    if not state.startswith("running"):
                        raise AssertionError(f"{pod.name}/{c['name']} is not running ({state}) during its {kind}")
                    ok, last = probe_once(pod, c, probe, prober)
                    attempts += 1
                    if ok:
                        break
                    if kind == "livenessProbe" and attempts >= int(probe.get("failureThreshold", 3)):
                        raise AssertionError(f"{pod.name}/{c['name']}: livenessProbe failed {attempts} times: {last}")
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{pod.name}/{c['name']}: {kind} did not pass within {READY_TIMEOUT:.0f}s: {last}")
                    time.sleep(min(float(probe.get("periodSeconds", 10)), 2.0))
                log(f"  {pod.name}/{c['name']}: {kind} passed ({attempts} attempt{'s' if attempts > 1 else ''})")


# --- requests through the router ---------------------------------------------


def request(port: int, method: str, path: str, host: str, headers: dict | None = None,
            tls_ca: str | None = None, timeout: float = 10) -> tuple[int, str]:
    """One HTTP/1.1 request to 127.0.0.1:port with this Host (and SNI, over TLS)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if tls_ca is not None:
            ctx = ssl.create_default_context(cadata=tls_ca)
            sock = ctx.wrap_socket(sock, server_hostname=host)
        head = {"Host": host, "Connection": "close", "Content-Length": "0", **(headers or {})}
        sock.sendall((f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n").encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head_text, _, body = data.partition(b"\r\n\r\n")
    status = int(head_text.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head_text.lower():
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    return status, body.decode(errors="replace")


# --- the test ---------------------------------------------------------------


def metrics_of(port: int) -> dict[str, float]:
    """Prometheus text from 127.0.0.1:port/metrics, as name -> value (unlabelled samples)."""
    code, body = request(port, "GET", "/metrics", "localhost")
    if code != 200:
        raise AssertionError(f"GET :{port}/metrics: {code}")
    out = {}
    for line in body.splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#"):
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def decided_in_the_router(gw: "Pod", objs) -> None:
    """The module scenario: the checks above were made by the enforcer's
    module in the router container, and counted there, not by the enforcer
    container."""
    cfg = tomllib.loads([o for o in cl.find(objs, "ConfigMap") if "config.toml" in (o.get("data") or {})][0]["data"]["config.toml"])
    result("rendered [router] enforcerMode = \"module\"", cfg["router"].get("enforcerMode") == "module",
           f"{cfg['router'].get('enforcerMode')}")
    enforcer_svc = next(s["metadata"]["name"] for s in gw.services if s["metadata"]["name"].endswith("-enforcer"))
    code, module = request(gw.published[(enforcer_svc, "module-metrics")], "GET", "/metrics", "localhost")
    decided = [l for l in module.splitlines() if l.startswith("enforcer_checks_total{")]
    result("the router's module counted the checks (allow and deny 900901) on its module-metrics port",
           code == 200 and any('decision="allow"' in l for l in decided)
           and any('code="900901"' in l for l in decided), f"{code} {decided}")
    code, service = request(gw.published[(enforcer_svc, "metrics")], "GET", "/metrics", "localhost")
    result("the enforcer container decided nothing", code == 200 and "enforcer_checks_total{" not in service,
           f"{code} {[l for l in service.splitlines() if l.startswith('enforcer_checks_total{')]}")


def shared_counting(pods: list[Pod], gws: list[Pod], router_svc: str, vhost: str, token: str, objs) -> None:
    """The redis scenario: the enforcers of both gateway-runtime pods count one
    10PerDay limit together in the chart's Redis."""
    cfg = tomllib.loads([o for o in cl.find(objs, "ConfigMap") if "config.toml" in (o.get("data") or {})][0]["data"]["config.toml"])
    t = cfg["enforcer"]["throttling"]
    result("rendered [enforcer.throttling]: backend redis, replicas 2, the chart's Redis with $env{REDIS_PASSWORD}",
           t["backend"] == "redis" and t["replicas"] == 2 and t["redis"]["url"].startswith("redis://:$env{REDIS_PASSWORD}@")
           and t["redis"]["url"].endswith("-redis:6379"), f"{t}")
    result("two gateway-runtime pods (two enforcers, two routers)", len(gws) == 2, ", ".join(p.name for p in gws))
    ports = [gw.published[(router_svc, "http")] for gw in gws]
    # The API is served by both routers and known to both enforcers: 401
    # without a token (refused by authentication, before any counting).
    for gw, port in zip(gws, ports):
        eventually(f"{LIMITED_API} on {gw.name}", lambda port=port: (lambda r: r if r[0] == 401 else None)(
            request(port, "GET", LIMITED_API, vhost)), 60)
    codes: list[tuple[str, int]] = []
    bodies_429 = []
    for i in range(30):
        gw, port = gws[i % 2], ports[i % 2]
        code, body = request(port, "GET", LIMITED_API, vhost, {"Authorization": f"Bearer {token}"})
        codes.append((gw.name, code))
        if code == 429:
            bodies_429.append(body)
    ok, throttled = sum(1 for _, c in codes if c == 200), sum(1 for _, c in codes if c == 429)
    per_pod = "; ".join(f"{gw.name}: {[c for n, c in codes if n == gw.name]}" for gw in gws)
    result("30 requests with a token to the 10PerDay resource over both routers: exactly 10 answered 200, 20 answered 429",
           ok == 10 and throttled == 20 and len(codes) == 30, per_pod)
    result("the 429s are throttling refusals (code 900802, Message throttled out)",
           all('"900802"' in b and "throttled out" in b for b in bodies_429), (bodies_429 or [""])[0][:160])
    enforcer_svc = next(s["metadata"]["name"] for s in gws[0].services if s["metadata"]["name"].endswith("-enforcer"))
    admitted = 0.0
    for gw in gws:
        m = metrics_of(gw.published[(enforcer_svc, "metrics")])
        calls = m.get("enforcer_throttle_store_calls_total", 0)
        errors = m.get("enforcer_throttle_store_errors_total", -1)
        degraded = m.get("enforcer_throttle_degraded_decisions_total", -1)
        admitted += m.get("enforcer_throttle_admitted_shared_total", 0)
        result(f"{gw.name}: its enforcer counted in Redis (store calls > 0, no store errors, no failure-mode decisions)",
               calls > 0 and errors == 0 and degraded == 0, f"calls {calls:g}, errors {errors:g}, degraded {degraded:g}")
    result("requests admitted with shared counting, both enforcers together: 10", admitted == 10, f"{admitted:g}")
    redis_pod = next(p for p in pods if "redis" in p.containers)
    prefix = t["redis"]["keyPrefix"]
    keys = docker("exec", redis_pod.containers["redis"], "redis-cli", "--scan", "--pattern", f"{prefix}*").stdout.split()
    result(f"the counters are in the chart's Redis under keyPrefix {prefix!r} (its password from the Secret)",
           len(keys) > 0, ", ".join(keys[:3]))


def run_scenario(scenario: str, objs, root: Path) -> bool:
    """One scenario's pods, checks and clean-up; True when it failed."""
    global PREFIX, LABEL, SCENARIO
    PREFIX = f"ccw{os.getpid()}{scenario[:1]}"
    LABEL = f"cc-chart-wiring={PREFIX}"
    SCENARIO = scenario
    log(f"-- scenario {scenario}")
    deployments = cl.find(objs, "Deployment")
    services = cl.find(objs, "Service")
    root = root / scenario
    root.mkdir()
    os.chmod(root, 0o755)
    network = f"{PREFIX}-net"
    pods: list[Pod] = []
    failed = False
    try:
        docker("network", "create", "--label", LABEL, network)
        prober = Prober(network)
        docker("run", "-d", "--name", f"{PREFIX}-backend", "--label", LABEL, "--network", network,
               "--network-alias", "backend", BACKEND_IMAGE)
        for d in deployments:
            t = d["spec"]["template"]
            replicas = int(d["spec"].get("replicas", 1))
            for i in range(replicas):
                name = f"{d['metadata']['name']}-wiring" + (f"-{i}" if replicas > 1 else "")
                pods.append(Pod(name, t["spec"], t["metadata"].get("labels", {}), objs, root, services))
        for p in pods:
            p.run(network)
        result("pods started as rendered", True,
               "; ".join(f"{p.name}: {', '.join(p.containers)}" for p in pods))
        wait_ready(pods, prober)
        result("every startup, readiness and liveness probe passes", True)

        # What the requests need, from the render.
        cfg = tomllib.loads([o for o in cl.find(objs, "ConfigMap") if "config.toml" in (o.get("data") or {})][0]["data"]["config.toml"])
        vhost = next(m["vhost"] for m in cfg["adapter"]["vhostMapping"])
        system_host = cfg["router"]["systemHost"]
        gws = [p for p in pods if any(s["metadata"]["name"].endswith("-router") for s in p.services)]
        gw = gws[0]
        router_svc = next(s["metadata"]["name"] for s in gw.services if s["metadata"]["name"].endswith("-router"))
        http, https = gw.published[(router_svc, "http")], gw.published[(router_svc, "https")]
        secret_objs = {s["metadata"]["name"]: s for s in cl.find(objs, "Secret")}
        gw_enforcer = next(c for c in gw.spec["containers"] if c["name"] == "enforcer")
        password = cl.env_of(gw_enforcer, objs)["enforcer_admin_pwd"]
        ca = base64.b64decode(next(s for n, s in secret_objs.items() if n.endswith("-default-keystore"))["data"]["ca.crt"]).decode()
        api = "/petstore/1.0.0/pets"

        code, body = eventually("the public resource", lambda: (lambda r: r if r[0] == 200 else None)(
            request(http, "GET", api, vhost)), 60)
        result(f"public GET {api} (Host {vhost}) through the router", True, f"{code}")

        code, body = request(http, "POST", api, vhost)
        result("secured POST without a token: 401 with code 900901", code == 401 and "900901" in body, f"{code} {body[:160]}")

        auth = base64.b64encode(f"admin:{password}".encode()).decode()
        token = eventually("a /testkey token", lambda: (lambda r: r[1].strip() if r[0] == 200 and r[1].count(".") == 2 else None)(
            request(https, "POST", "/testkey", system_host, {"Authorization": f"Basic {auth}"}, tls_ca=ca)), 30)
        result("/testkey over HTTPS (certificate verified against the rendered CA, password from the rendered Secret)",
               True, f"a JWT of {len(token)} bytes")

        code, body = request(http, "POST", api, vhost, {"Authorization": f"Bearer {token}"})
        result("secured POST with the token: 200", code == 200, f"{code} {body[:160]}")

        if scenario == "redis":
            shared_counting(pods, gws, router_svc, vhost, token, objs)
        if scenario == "module":
            decided_in_the_router(gw, objs)

        admin_open = prober.tcp(gw.ip, 9000)
        result("the Envoy admin port (9000) is not reachable from the network", not admin_open)

        # Metrics where the ServiceMonitors scrape them: the pods' named
        # `metrics` ports (adapter 19085, enforcer 19086, router 8404).
        for pod in pods:
            for c in pod.spec["containers"]:
                for port in c.get("ports", []):
                    if not port.get("name", "").endswith("metrics"):
                        continue
                    # Envoy's own on the router's `metrics`; the enforcer's
                    # module in the router serves /metrics on `module-metrics`.
                    path = "/stats/prometheus" if (c["name"], port["name"]) == ("router", "metrics") else "/metrics"
                    code = prober.http(pod.ip, port["containerPort"], path)
                    result(f"{c['name']} metrics: GET :{port['containerPort']}{path}", code == 200, f"{code}")

        for path, t in [(p, o) for p, o in objs if o.get("kind") == "Pod"]:
            if (t["metadata"].get("annotations") or {}).get("helm.sh/hook") != "test":
                continue
            tp = Pod(t["metadata"]["name"], t["spec"], t["metadata"].get("labels", {}), objs, root, [])
            tp.run(network, long_running=False)
            c = tp.containers[t["spec"]["containers"][0]["name"]]
            out = docker("wait", c, timeout=120).stdout.strip()
            logs = docker("logs", c, check=False)
            result(f"helm test pod {t['metadata']['name']}", out == "0", f"exit {out}: {(logs.stdout + logs.stderr).strip()[-200:]}")
    except Exception as e:  # noqa: BLE001 - reported, logs printed, cleaned up
        failed = True
        if not isinstance(e, Failed):
            RESULTS.append((f"[{scenario}] chart wiring test", False))
            log(f"FAIL [{scenario}] chart wiring test: {e}")
            if os.environ.get("CHART_TEST_DEBUG"):
                traceback.print_exc()
    finally:
        names = docker("ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.Names}}", check=False).stdout.split()
        if failed:
            for n in sorted(names):
                out = docker("logs", "--tail", "60", n, check=False)
                state = docker("inspect", "-f", "{{.State.Status}} exit={{.State.ExitCode}}", n, check=False).stdout.strip()
                log(f"---- logs of {n} ({state}) ----\n{(out.stdout + out.stderr).rstrip()}")
        if names:
            docker("rm", "-f", "-v", *names, check=False)
        for p in pods:
            for v in p.docker_volumes:
                docker("volume", "rm", "-f", v, check=False)
        for v in docker("volume", "ls", "-q", "--filter", f"label={LABEL}", check=False).stdout.split():
            docker("volume", "rm", "-f", v, check=False)
        docker("network", "rm", network, check=False)
        left = [x for kind in (["ps", "-a"], ["volume", "ls"], ["network", "ls"])
                for x in docker(*kind, "-q", "--filter", f"label={LABEL}", check=False).stdout.split()]
        if left:
            log(f"WARN chart wiring test: left behind: {left}")
    return failed


def main() -> int:
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True) \
        if shutil.which("docker") else None
    if info is None or info.returncode != 0:
        why = "no docker CLI" if info is None else (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
        log(f"SKIPPED: chart wiring test: no Docker engine ({why})")
        return 0
    chosen = [x.strip() for x in os.environ.get("CHART_WIRING_SCENARIOS", ",".join(SCENARIOS)).split(",") if x.strip()]
    unknown = [x for x in chosen if x not in SCENARIOS]
    if unknown or not chosen:
        log(f"FAIL chart wiring test: CHART_WIRING_SCENARIOS: unknown {unknown or chosen}; known: {', '.join(SCENARIOS)}")
        return 1
    renders = {name: render(name)[0] for name in chosen}
    # Every image the rendered pods run (the chart's Redis: redis:7.0-bookworm,
    # a local stand-in from `make test-images` where no registry answers).
    images = {BACKEND_IMAGE} | {c["image"] for objs in renders.values() for o in cl.find(objs, "Deployment")
                                for c in o["spec"]["template"]["spec"]["containers"]}
    missing = sorted(i for i in images if docker("image", "inspect", i, check=False).returncode != 0)
    if missing:
        log(f"FAIL chart wiring test: missing images {', '.join(missing)}: run `make test-images` (CC_IMAGE_TAG picks the tag; `make images` makes `latest`)")
        return 1

    root = Path(tempfile.mkdtemp(prefix="cc-chart-wiring-"))
    os.chmod(root, 0o755)
    failed = False
    try:
        for name in chosen:
            failed = run_scenario(name, renders[name], root) or failed
    finally:
        shutil.rmtree(root, ignore_errors=True)
    passed = sum(1 for _, ok in RESULTS if ok)
    log(f"chart-wiring: {passed} passed, {len(RESULTS) - passed} failed ({', '.join(chosen)})")
    return 1 if failed or len(RESULTS) == passed == 0 else (0 if passed == len(RESULTS) else 1)


if __name__ == "__main__":
    sys.exit(main())
