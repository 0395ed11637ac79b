#!/usr/bin/env python3
"""Offline checks of charts/choreo-connect (no cluster, no helm CLI).

  1. lint: `helm lint --strict` of the chart with its default values, with
     examples/production-values.yaml and with integration/chart/redis-values.yaml
     (the chart's Redis, two gateway-runtime pods) (helm-python-sdk's lint);
  2. render: the three value sets (the production one with the Prometheus
     Operator API present, as `helm template --api-versions
     monitoring.coreos.com/v1`); the chart's own guards and values.schema.json
     must reject bad values;
  3. kubernetes-validate --strict of every rendered object against the
     Kubernetes versions in KUBE_VERSIONS. ServiceMonitor is a CRD, which
     kubernetes-validate has no schema for: its fields are checked here;
  4. golden files integration/chart/golden/{default,production,redis,module}.yaml,
     with generated key material masked (UPDATE_GOLDEN=1 rewrites them);
  5. the rendered config.toml of each passes `adapter --validate` (with the
     rendered environment), warnings included.

Run by scripts/chart-test.sh, which installs the Python packages. Prints one
line per check and `N passed, N failed` at the end; exits 1 on a failure.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import yaml

import chartlib as cl

KUBE_VERSIONS = ["1.30.0", "1.37.0"]
RESULTS: list[tuple[str, bool]] = []


def check(name: str):
    def wrap(fn):
        try:
            detail = fn()
            RESULTS.append((name, True))
            print(f"PASS {name}" + (f": {detail}" if detail else ""))
        except Exception as e:  # noqa: BLE001 - every failure is reported
            RESULTS.append((name, False))
            print(f"FAIL {name}: {e}")
            if os.environ.get("CHART_TEST_DEBUG"):
                traceback.print_exc()
        return fn

    return wrap


DEFAULT = cl.values()
PRODUCTION = cl.values([cl.PRODUCTION_VALUES])
REDIS = cl.values([cl.REDIS_VALUES])
MODULE = cl.values([cl.MODULE_VALUES])
renders: dict[str, dict[str, str]] = {}


@check("chart version: appVersion is the workspace version (Cargo.toml)")
def _():
    a, c = cl.app_version(), cl.cargo_version()
    if a != c:
        raise AssertionError(f"Chart.yaml appVersion {a} != Cargo.toml {c}")
    return a


for label, vals in [
    ("default values", DEFAULT),
    ("production values", PRODUCTION),
    ("redis values", REDIS),
    ("module values", MODULE),
]:

    @check(f"helm lint --strict ({label})")
    def _(vals=vals):
        import helm_python as helm

        report = helm.lint(cl.CHART, vals, strict=True, kube_version="v" + KUBE_VERSIONS[0])
        bad = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + [
            {"error": e} for e in report.get("errors") or []
        ]
        if bad:
            raise AssertionError("; ".join(f"{m.get('path', '')}: {m['error']}" for m in bad))
        infos = [m["error"] for m in report.get("messages", [])]
        return "; ".join(infos) if infos else "clean"


@check("render (default values)")
def _():
    renders["default"] = cl.render(DEFAULT)
    return f"{len(cl.manifests(renders['default']))} objects"


@check("render (production values, with monitoring.coreos.com/v1)")
def _():
    renders["production"] = cl.render(PRODUCTION, api_versions=[cl.MONITORING_API])
    return f"{len(cl.manifests(renders['production']))} objects"


@check("render (redis values: the chart's Redis, two gateway-runtime pods)")
def _():
    renders["redis"] = cl.render(REDIS)
    return f"{len(cl.manifests(renders['redis']))} objects"


@check("render (module values: the router decides with the enforcer's module, with monitoring.coreos.com/v1)")
def _():
    renders["module"] = cl.render(MODULE, api_versions=[cl.MONITORING_API])
    return f"{len(cl.manifests(renders['module']))} objects"


def kinds(name: str) -> list[str]:
    return [o["kind"] for _, o in cl.manifests(renders[name])]


@check("default render: what it holds")
def _():
    objs = cl.manifests(renders["default"])
    k = kinds("default")
    for want in ["Deployment", "Service", "ConfigMap", "Secret", "PersistentVolumeClaim", "ServiceAccount", "Pod"]:
        if want not in k:
            raise AssertionError(f"no {want}")
    for absent in ["HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor", "Ingress"]:
        if absent in k:
            raise AssertionError(f"{absent} rendered with default values")
    version = cl.app_version()
    for d in cl.find(objs, "Deployment"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            if not c["image"].endswith(":" + version):
                raise AssertionError(f"{c['name']}: image {c['image']} is not tagged with appVersion {version}")
            sc = c.get("securityContext", {})
            if not (sc.get("readOnlyRootFilesystem") and sc.get("runAsNonRoot") and sc.get("allowPrivilegeEscalation") is False
                    and sc.get("capabilities", {}).get("drop") == ["ALL"] and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"):
                raise AssertionError(f"{c['name']}: securityContext {sc}")
        ann = d["spec"]["template"]["metadata"].get("annotations", {})
        if "checksum/config" not in ann:
            raise AssertionError(f"{d['metadata']['name']}: no checksum/config annotation")
    # The admin port never leaves the pod.
    for s in cl.find(objs, "Service"):
        if any(p.get("port") == 9000 or p.get("targetPort") == 9000 for p in s["spec"]["ports"]):
            raise AssertionError(f"Service {s['metadata']['name']} exposes the Envoy admin port 9000")
    return ", ".join(sorted(set(k)))


@check("production render: HPA, PDB, topology spread, ServiceMonitors, user keystores")
def _():
    objs = cl.manifests(renders["production"])
    k = kinds("production")
    for want in ["HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress"]:
        if want not in k:
            raise AssertionError(f"no {want}")
    if k.count("ServiceMonitor") != 3:
        raise AssertionError(f"{k.count('ServiceMonitor')} ServiceMonitors, want 3")
    if any(o["metadata"]["name"].endswith("-default-keystore") for o in cl.find(objs, "Secret")):
        raise AssertionError("the default keystore is generated although every component has its own")
    gw = [d for d in cl.find(objs, "Deployment") if d["metadata"]["name"].endswith("-gateway-runtime")][0]
    if "replicas" in gw["spec"]:
        raise AssertionError("replicas set while the HPA owns them")
    if len(gw["spec"]["template"]["spec"].get("topologySpreadConstraints", [])) != 2:
        raise AssertionError("topologySpreadConstraints missing")
    hpa = cl.find(objs, "HorizontalPodAutoscaler")[0]
    if hpa["apiVersion"] != "autoscaling/v2" or hpa["spec"]["minReplicas"] < 3:
        raise AssertionError(f"HPA {hpa['apiVersion']} min {hpa['spec']['minReplicas']}")
    return None


def throttling_of(objs) -> dict:
    """[enforcer.throttling] of the rendered config.toml."""
    import tomllib

    cm = [o for o in cl.find(objs, "ConfigMap") if "config.toml" in (o.get("data") or {})][0]
    return tomllib.loads(cm["data"]["config.toml"])["enforcer"]["throttling"]


def by_suffix(objs, kind: str, suffix: str) -> list[dict]:
    return [o for o in cl.find(objs, kind) if o["metadata"]["name"].endswith(suffix)]


def enforcer_env(objs) -> dict[str, dict]:
    gw = by_suffix(objs, "Deployment", "-gateway-runtime")[0]
    c = next(c for c in gw["spec"]["template"]["spec"]["containers"] if c["name"] == "enforcer")
    return {e["name"]: e for e in c.get("env", [])}


@check("throttling: default memory counting for one replica, no Redis, no REDIS_PASSWORD")
def _():
    objs = cl.manifests(renders["default"])
    t = throttling_of(objs)
    want = {"backend": "memory", "replicas": 1, "failureMode": "local",
            "headers": {"retryAfter": True, "xRateLimit": False, "ietf": False}}
    if t != want:
        raise AssertionError(f"[enforcer.throttling] {t}, want {want}")
    if by_suffix(objs, "Deployment", "-redis") or by_suffix(objs, "Service", "-redis"):
        raise AssertionError("the chart's Redis is rendered although wso2.deployment.redis.enabled is false")
    if "REDIS_PASSWORD" in enforcer_env(objs):
        raise AssertionError("REDIS_PASSWORD without passwordSecret")
    return None


@check("throttling (redis values): the chart's Redis, its Service, 2 replicas, the password from the Secret")
def _():
    objs = cl.manifests(renders["redis"])
    t = throttling_of(objs)
    name = f"{cl.RELEASE}-choreo-connect-redis"
    want_url = f"redis://:$env{{REDIS_PASSWORD}}@{name}:6379"
    if (t["backend"], t["replicas"], t["redis"]["url"], t["redis"]["keyPrefix"], t["redis"]["timeoutMillis"]) != \
            ("redis", 2, want_url, "cc:rl:", 20):
        raise AssertionError(f"[enforcer.throttling] {t}")
    gw = by_suffix(objs, "Deployment", "-gateway-runtime")[0]
    if gw["spec"].get("replicas") != 2:
        raise AssertionError(f"gateway runtime replicas {gw['spec'].get('replicas')}")
    pw = enforcer_env(objs).get("REDIS_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef")
    if pw != {"name": "cc-redis-auth", "key": "password"}:
        raise AssertionError(f"enforcer REDIS_PASSWORD: {pw}")
    dep, svc = by_suffix(objs, "Deployment", "-redis"), by_suffix(objs, "Service", "-redis")
    if [d["metadata"]["name"] for d in dep] != [name] or [s["metadata"]["name"] for s in svc] != [name]:
        raise AssertionError(f"Redis Deployment {dep and dep[0]['metadata']['name']}, Service {svc and svc[0]['metadata']['name']}")
    dep, svc = dep[0], svc[0]
    pod = dep["spec"]["template"]
    if not all(pod["metadata"]["labels"].get(k) == v for k, v in svc["spec"]["selector"].items()):
        raise AssertionError("the Service does not select the Redis pod")
    if dep["spec"]["selector"]["matchLabels"] != svc["spec"]["selector"]:
        raise AssertionError("Deployment and Service select differently")
    if dep["spec"]["strategy"]["type"] != "Recreate" or dep["spec"]["replicas"] != 1:
        raise AssertionError("one Redis at a time (replicas 1, Recreate)")
    c = pod["spec"]["containers"][0]
    if c["command"][:7] != ["redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no"] or \
            c["command"][7:] != ["--requirepass", "$(REDIS_PASSWORD)"]:
        raise AssertionError(f"command {c['command']}")
    for probe in ("livenessProbe", "readinessProbe"):
        if c[probe]["exec"]["command"] != ["redis-cli", "ping"]:
            raise AssertionError(f"{probe} {c[probe]}")
    env = {e["name"]: e for e in c["env"]}
    if env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] != {"name": "cc-redis-auth", "key": "password"} or \
            env["REDISCLI_AUTH"]["value"] != "$(REDIS_PASSWORD)":
        raise AssertionError(f"Redis env {c['env']}")
    sc = c["securityContext"]
    if not (sc.get("readOnlyRootFilesystem") and sc.get("runAsNonRoot") and sc.get("runAsUser") not in (None, 0)
            and sc.get("allowPrivilegeEscalation") is False and sc.get("capabilities", {}).get("drop") == ["ALL"]):
        raise AssertionError(f"Redis securityContext {sc}")
    if c.get("workingDir") != "/data" or {"name": "data", "mountPath": "/data"} not in c["volumeMounts"] or \
            "emptyDir" not in next(v for v in pod["spec"]["volumes"] if v["name"] == "data"):
        raise AssertionError("/data is not the emptyDir working directory")
    if c["image"] != "redis:7.0-bookworm":
        raise AssertionError(f"image {c['image']}")
    return f"{name}: {c['image']}, url {want_url}"


@check("module mode: the router container's module-metrics port, the Service's and the ServiceMonitor's, and REDIS_PASSWORD with Redis")
def _():
    objs = cl.manifests(renders["module"])
    gw = by_suffix(objs, "Deployment", "-gateway-runtime")[0]
    router = next(c for c in gw["spec"]["template"]["spec"]["containers"] if c["name"] == "router")
    if {"name": "module-metrics", "containerPort": 19087, "protocol": "TCP"} not in router["ports"]:
        raise AssertionError(f"router ports {router['ports']}")
    svc = by_suffix(objs, "Service", "-enforcer")[0]
    if not any(p["name"] == "module-metrics" and p["targetPort"] == "module-metrics" for p in svc["spec"]["ports"]):
        raise AssertionError(f"enforcer Service ports {svc['spec']['ports']}")
    mon = [o for o in cl.find(objs, "ServiceMonitor") if o["metadata"]["name"].endswith("-enforcer")][0]
    if [e["port"] for e in mon["spec"]["endpoints"]] != ["metrics", "module-metrics"]:
        raise AssertionError(f"enforcer ServiceMonitor endpoints {mon['spec']['endpoints']}")
    default_router = next(c for c in by_suffix(cl.manifests(renders["default"]), "Deployment", "-gateway-runtime")[0]
                          ["spec"]["template"]["spec"]["containers"] if c["name"] == "router")
    if any(p["name"] == "module-metrics" for p in default_router["ports"]):
        raise AssertionError("module-metrics in extAuthz mode")
    both = cl.manifests(cl.render(cl.values([cl.REDIS_VALUES, cl.MODULE_VALUES])))
    gw = by_suffix(both, "Deployment", "-gateway-runtime")[0]
    router = next(c for c in gw["spec"]["template"]["spec"]["containers"] if c["name"] == "router")
    pw = {e["name"]: e for e in router["env"]}.get("REDIS_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef")
    if pw != {"name": "cc-redis-auth", "key": "password"}:
        raise AssertionError(f"router REDIS_PASSWORD with Redis in module mode: {pw}")
    return None


@check("throttling (production values): external Redis, replicas = HPA maxReplicas")
def _():
    objs = cl.manifests(renders["production"])
    t = throttling_of(objs)
    if (t["backend"], t["replicas"]) != ("redis", 12) or "$env{REDIS_PASSWORD}@" not in t["redis"]["url"]:
        raise AssertionError(f"[enforcer.throttling] {t}")
    if by_suffix(objs, "Deployment", "-redis"):
        raise AssertionError("the chart's Redis is rendered although not enabled")
    pw = enforcer_env(objs).get("REDIS_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef")
    if pw != {"name": "gateway-redis", "key": "password"}:
        raise AssertionError(f"enforcer REDIS_PASSWORD: {pw}")
    return None


@check("ServiceMonitor only when the cluster serves monitoring.coreos.com/v1")
def _():
    without = cl.render(PRODUCTION)
    if any(o["kind"] == "ServiceMonitor" for _, o in cl.manifests(without)):
        raise AssertionError("ServiceMonitor rendered without the API")
    notes = [t for p, t in without.items() if p.endswith("NOTES.txt")][0]
    if "no ServiceMonitor was created" not in notes:
        raise AssertionError("NOTES.txt does not say the ServiceMonitor was skipped")


T = "wso2.deployment.gatewayRuntime.enforcer.throttling"
REJECTED = [
    ("schema: mode APIM_AS_CP", "wso2.deployment.mode=APIM_AS_CP", "mode"),
    ("schema: unknown key", "wso2.deployment.adapter.consul.enabled=true", "consul"),
    ("schema: imagePullPolicy enum", "wso2.deployment.gatewayRuntime.router.imagePullPolicy=Sometimes", "imagePullPolicy"),
    ("schema: one adapter", "wso2.deployment.adapter.replicaCount=2", "replicaCount"),
    ("guard: PDB over one replica", "wso2.deployment.gatewayRuntime.podDisruptionBudget.enabled=true", "at least 2 replicas"),
    ("guard: PDB with HPA minReplicas 1",
     "wso2.deployment.gatewayRuntime.podDisruptionBudget.enabled=true,wso2.deployment.gatewayRuntime.replicaCount=3,"
     "wso2.deployment.gatewayRuntime.autoscaling.enabled=true,wso2.deployment.gatewayRuntime.autoscaling.minReplicas=1",
     "at least 2 replicas"),
    ("guard: grace period above the drain time", "wso2.deployment.gatewayRuntime.terminationGracePeriodSeconds=20", "must be above"),
    ("guard: keystore cert without key", "wso2.deployment.adapter.security.keystore.cert.secretName=x,"
     "wso2.deployment.adapter.security.keystore.cert.subPath=tls.crt", "security.keystore.key"),
    ("schema: Choreo analytics (not supported)", "wso2.choreoAnalytics.enabled=true", "choreoAnalytics"),
    ("schema: Java dropins (not a Java enforcer)", "wso2.deployment.gatewayRuntime.enforcer.dropins[0].configMapName=x", "dropins"),
    ("schema: throttling backend enum", f"{T}.backend=memcached", "backend"),
    ("schema: throttling failureMode enum", f"{T}.failureMode=maybe", "failureMode"),
    ("schema: backend redis without a url or the chart's Redis", f"{T}.backend=redis", "/wso2/deployment/redis/enabled"),
    ("schema: rediss:// (no TLS to Redis in this enforcer)", f"{T}.backend=redis,{T}.redis.url=rediss://r:6379", "url"),
    ("schema: unknown key of the chart's Redis", "wso2.deployment.redis.persistence.enabled=true", "persistence"),
    ("guard: a Redis url with backend memory", f"{T}.redis.url=redis://r:6379", "backend is memory"),
    ("guard: passwordSecret with backend memory", f"{T}.redis.passwordSecret.name=pw", "no Redis to use it"),
    ("guard: passwordSecret the url does not use", f"{T}.backend=redis,{T}.redis.url=redis://r:6379,"
     f"{T}.redis.passwordSecret.name=pw", "$env{REDIS_PASSWORD}"),
    ("guard: $env{REDIS_PASSWORD} without passwordSecret", f"{T}.backend=redis,"
     f"{T}.redis.url=redis://:$env{{REDIS_PASSWORD}}@r:6379", "no REDIS_PASSWORD"),
]
for label, expr, expect in REJECTED:

    @check(f"rejected: {label}")
    def _(expr=expr, expect=expect):
        try:
            cl.render(cl.values(sets=[expr]))
        except Exception as e:  # noqa: BLE001
            if expect not in str(e):
                raise AssertionError(f"failed for another reason: {e}") from None
            return str(e).strip().splitlines()[-1][:120]
        raise AssertionError(f"--set {expr} rendered")


@check("accepted: a Choreo Connect user's values (integration/chart/choreo-connect-user-values.yaml)")
def _():
    objs = cl.manifests(cl.render(cl.values([cl.ROOT / "integration/chart/choreo-connect-user-values.yaml"])))
    if "Ingress" not in [o["kind"] for _, o in objs]:
        raise AssertionError("the router's ingress (router.ingress.enabled) is missing")
    return f"{len(objs)} objects"


@check("accepted: backend redis with an external url; the chart's Redis with the HPA (replicas = maxReplicas)")
def _():
    objs = cl.manifests(cl.render(cl.values(sets=[
        f"{T}.backend=redis,{T}.redis.url=redis://:$env{{REDIS_PASSWORD}}@redis.example:6379,{T}.redis.passwordSecret.name=pw"])))
    t = throttling_of(objs)
    if t["redis"]["url"] != "redis://:$env{REDIS_PASSWORD}@redis.example:6379" or by_suffix(objs, "Deployment", "-redis"):
        raise AssertionError(f"external url: {t}")
    objs = cl.manifests(cl.render(cl.values(sets=[
        "wso2.deployment.redis.enabled=true,wso2.deployment.gatewayRuntime.autoscaling.enabled=true,"
        "wso2.deployment.gatewayRuntime.autoscaling.maxReplicas=7"])))
    t = throttling_of(objs)
    if (t["backend"], t["replicas"], t["redis"]["url"]) != ("redis", 7, f"redis://{cl.RELEASE}-choreo-connect-redis:6379"):
        raise AssertionError(f"chart's Redis with HPA: {t}")
    c = by_suffix(objs, "Deployment", "-redis")[0]["spec"]["template"]["spec"]["containers"][0]
    if "--requirepass" in c["command"] or c.get("env"):
        raise AssertionError("a password without passwordSecret")
    return None


@check("accepted: PDB with 2 replicas, HPA with minReplicas 2")
def _():
    for expr in [
        "wso2.deployment.gatewayRuntime.podDisruptionBudget.enabled=true,wso2.deployment.gatewayRuntime.replicaCount=2",
        "wso2.deployment.gatewayRuntime.podDisruptionBudget.enabled=true,wso2.deployment.gatewayRuntime.autoscaling.enabled=true,"
        "wso2.deployment.gatewayRuntime.autoscaling.minReplicas=2",
    ]:
        k = [o["kind"] for _, o in cl.manifests(cl.render(cl.values(sets=[expr])))]
        if "PodDisruptionBudget" not in k:
            raise AssertionError(f"no PDB for {expr}")


def servicemonitor_fields(o: dict) -> None:
    """What kubernetes-validate cannot: the ServiceMonitor fields the chart sets."""
    allowed_top = {"apiVersion", "kind", "metadata", "spec"}
    if set(o) - allowed_top:
        raise AssertionError(f"unexpected top-level fields {set(o) - allowed_top}")
    spec = o["spec"]
    if set(spec) - {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels", "podTargetLabels", "sampleLimit"}:
        raise AssertionError(f"unexpected spec fields {set(spec)}")
    if not spec["selector"].get("matchLabels"):
        raise AssertionError("no selector.matchLabels")
    for ep in spec["endpoints"]:
        if set(ep) - {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "relabelings", "metricRelabelings"}:
            raise AssertionError(f"unexpected endpoint fields {set(ep)}")
        if not isinstance(ep.get("port"), str) or not str(ep.get("path", "")).startswith("/"):
            raise AssertionError(f"endpoint {ep}")
        for d in ("interval", "scrapeTimeout"):
            if d in ep and not re.fullmatch(r"([0-9]+(ms|s|m|h))+", ep[d]):
                raise AssertionError(f"{d} {ep[d]!r} is not a Prometheus duration")


class StandInApiServer:
    """Just enough of a Kubernetes API server on 127.0.0.1 for Helm's
    `lookup` of Secrets (discovery of v1, GET of one Secret), so that the
    chart's upgrade path (reusing what it generated) renders as on a cluster."""

    def __init__(self):
        import http.server
        import json
        import threading

        self.secrets: dict[str, dict] = {}
        store = self.secrets

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0].strip("/").split("/")
                body = None
                if path == ["api"]:
                    body = {"kind": "APIVersions", "versions": ["v1"],
                            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
                elif path == ["apis"]:
                    body = {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
                elif path == ["api", "v1"]:
                    body = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                        {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret", "verbs": ["get"]}]}
                elif len(path) == 6 and path[:3] == ["api", "v1", "namespaces"] and path[4] == "secrets":
                    body = store.get(path[5])
                code = 200 if body is not None else 404
                body = body or {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body).encode())

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def apply(self, objs) -> None:
        for s in cl.find(objs, "Secret"):
            self.secrets[s["metadata"]["name"]] = s

    def close(self) -> None:
        self.server.shutdown()


@check("upgrade: generated certificate and passwords are kept (lookup), renewed on new names or near expiry")
def _():
    import helm_python as helm

    api = StandInApiServer()
    try:
        with helm.Config(kube_apiserver=api.url, namespace=cl.NAMESPACE) as cfg, helm.Chart.load(cl.CHART) as chart:
            def render(vals, **kw):
                return cl.manifests(cfg.render(chart, vals, name=cl.RELEASE, namespace=cl.NAMESPACE, **kw))

            def secret(objs, suffix):
                return next(s for s in cl.find(objs, "Secret") if s["metadata"]["name"].endswith(suffix))

            def checksums(objs):
                return {d["spec"]["template"]["metadata"]["annotations"]["checksum/tls"] for d in cl.find(objs, "Deployment")}

            first = render({}, is_install=True)
            api.apply(first)
            again = render({}, is_upgrade=True)
            for suffix in ("-default-keystore", "-admin-credentials"):
                if secret(again, suffix)["data"] != secret(first, suffix)["data"]:
                    raise AssertionError(f"{suffix}: regenerated on upgrade")
            if len(checksums(again)) != 1:
                raise AssertionError(f"the pods' checksum/tls differ on upgrade: {checksums(again)}")
            renamed = render({"wso2": {"deployment": {"defaultCertificate": {"extraDnsNames": ["gw.example.org"]}}}}, is_upgrade=True)
            if secret(renamed, "-default-keystore")["data"]["tls.crt"] == secret(first, "-default-keystore")["data"]["tls.crt"]:
                raise AssertionError("not renewed although the names changed")
            if checksums(renamed) & checksums(again):
                raise AssertionError("the pods would not roll onto the renewed certificate")
            expiring = render({"wso2": {"deployment": {"defaultCertificate": {"renewBeforeDays": 900}}}}, is_upgrade=True)
            if secret(expiring, "-default-keystore")["data"]["tls.crt"] == secret(first, "-default-keystore")["data"]["tls.crt"]:
                raise AssertionError("not renewed within renewBeforeDays of its expiry")
            if secret(expiring, "-admin-credentials")["data"] != secret(first, "-admin-credentials")["data"]:
                raise AssertionError("passwords changed")
        return "via a stand-in API server on 127.0.0.1"
    finally:
        api.close()


for version in KUBE_VERSIONS:

    @check(f"kubernetes-validate --strict -k {version} (default, production, redis and module)")
    def _(version=version):
        tmp = Path(tempfile.mkdtemp(prefix="cc-chart-validate-"))
        try:
            files, crds = [], []
            for name, rendered in renders.items():
                for i, (path, obj) in enumerate(cl.manifests(rendered)):
                    if obj["apiVersion"].startswith("monitoring.coreos.com/"):
                        crds.append(obj)
                        continue
                    f = tmp / f"{name}-{i:02d}-{obj['kind'].lower()}-{Path(path).stem}.yaml"
                    f.write_text(yaml.safe_dump(obj, sort_keys=False))
                    files.append(str(f))
            out = subprocess.run(
                [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, *files],
                capture_output=True, text=True,
            )
            text = out.stdout + out.stderr
            problems = [l for l in text.splitlines() if not l.startswith("INFO")]
            if out.returncode != 0 or problems:
                raise AssertionError("\n  " + "\n  ".join(problems or [f"exit {out.returncode}"]))
            passed = sum(1 for l in text.splitlines() if l.startswith("INFO") and "passed" in l)
            if passed != len(files):
                raise AssertionError(f"{passed} of {len(files)} objects reported as passed")
            for o in crds:
                servicemonitor_fields(o)
            return (f"{passed} objects valid; {len(crds)} ServiceMonitor(s): no schema in kubernetes-validate "
                    f"(a CRD), fields checked by hand")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


for name in ["default", "production", "redis", "module"]:

    @check(f"golden: integration/chart/golden/{name}.yaml")
    def _(name=name):
        if name not in renders:
            raise AssertionError("not rendered")
        got = cl.mask(cl.stream(renders[name]))
        path = cl.GOLDEN / f"{name}.yaml"
        if os.environ.get("UPDATE_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(got)
            return "rewritten (UPDATE_GOLDEN=1)"
        if not path.exists():
            raise AssertionError(f"{path} is missing: run with UPDATE_GOLDEN=1")
        want = path.read_text()
        if got != want:
            diff = "".join(list(difflib.unified_diff(want.splitlines(True), got.splitlines(True), str(path), "render"))[:60])
            raise AssertionError(f"the render differs (UPDATE_GOLDEN=1 rewrites the golden):\n{diff}")


def adapter_validate_cmd(config: Path) -> list[str]:
    """`adapter --validate` of config: a host binary, else the image."""
    for b in [os.environ.get("ADAPTER_BIN", ""), cl.ROOT / "target/release/adapter", cl.ROOT / "target/debug/adapter"]:
        if b and Path(b).is_file() and os.access(b, os.X_OK):
            return [str(b), "--validate", "--config", str(config)]
    image = f"choreo-connect-adapter:{os.environ.get('CC_IMAGE_TAG', 'test')}"
    if shutil.which("docker") and subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0:
        return ["docker", "run", "--rm", "--network", "none", "-v", f"{config}:/home/wso2/conf/config.toml:ro",
                image, "--validate", "--config", "/home/wso2/conf/config.toml"]
    raise AssertionError("no adapter binary (target/release/adapter, target/debug/adapter, $ADAPTER_BIN) "
                         f"and no image {image}: build one first")


for name in ["default", "production", "redis", "module"]:

    @check(f"adapter --validate of the rendered config.toml and log_config.toml ({name})")
    def _(name=name):
        objs = cl.manifests(renders[name])
        cm = [o for o in cl.find(objs, "ConfigMap") if o["metadata"]["name"].endswith("-adapter-config-toml")][0]
        log_cm = [o for o in cl.find(objs, "ConfigMap") if "log_config.toml" in o.get("data", {})][0]
        adapter = [d for d in cl.find(objs, "Deployment") if d["metadata"]["name"].endswith("-adapter")][0]
        container = adapter["spec"]["template"]["spec"]["containers"][0]
        try:
            env = cl.env_of(container, objs)
        except LookupError:
            # production: the passwords come from a Secret the user creates.
            env = {e["name"]: e.get("value", "from-a-user-secret") for e in container.get("env", [])}
        tmp = Path(tempfile.mkdtemp(prefix="cc-chart-config-"))
        try:
            cfg = tmp / "config.toml"
            cfg.write_text(cm["data"]["config.toml"])
            cfg.chmod(0o644)
            log_cfg = tmp / "log_config.toml"
            log_cfg.write_text(log_cm["data"]["log_config.toml"])
            log_cfg.chmod(0o644)
            tmp.chmod(0o755)
            cmd = adapter_validate_cmd(cfg)
            if cmd[0] == "docker":
                for k, v in env.items():
                    cmd[3:3] = ["-e", f"{k}={v}"]
                cmd[3:3] = ["-v", f"{log_cfg}:{env.get('LOG_CONFIG_PATH', '/home/wso2/conf/log_config.toml')}:ro"]
                run_env = None
            else:
                # The rendered log_config.toml where the rendered env says.
                run_env = {"PATH": os.environ.get("PATH", ""), **env, "LOG_CONFIG_PATH": str(log_cfg)}
            out = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=60)
            text = (out.stdout + out.stderr).strip()
            warnings = [l for l in out.stdout.splitlines() if l.startswith("warning:")]
            if out.returncode != 0:
                raise AssertionError(f"exit {out.returncode}: {text}")
            if warnings:
                raise AssertionError("warnings: " + "; ".join(warnings))
            return f"{Path(cmd[0]).name if cmd[0] != 'docker' else 'docker image'}: valid"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


passed = sum(1 for _, ok in RESULTS if ok)
failed = len(RESULTS) - passed
print(f"chart-validation: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
