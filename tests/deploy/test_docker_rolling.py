"""Kubernetes' rolling update of deploy/k8s's Deployment, shaped with
containers on a real Docker engine (there is no cluster here; the pod is our
image plus a spec we wrote, and that spec is what runs):

- three bridge containers as the pod template describes them: the image, its
  args, the ConfigMap's bridge.ini mounted read-only at /etc/webhook-bridge,
  the Secret's environment variables (secret.example.yaml's values), user 10001, read-only root, no
  capabilities, no privilege escalation, an in-memory /tmp of the emptyDir's
  size, the same ports; on the compose stack's Kafka (its network), the
  brokers given by BRIDGE_KAFKA_BROKERS as an overlay would; Shoperti on a
  secret path (its API, which auth = api-lookup asks, is not reachable here);
- nginx on 127.0.0.1 as the Service (tests/lib/nginx.py), its upstreams the
  containers' published webhook ports, reloaded when the endpoints change;
- under a steady load from the three providers, the containers replaced one
  at a time as the Deployment's strategy says (maxSurge 1, maxUnavailable 0):
  a new one started and ready on /readyz (its readiness probe) before an old
  one leaves; the old one taken out of nginx, its preStop command run, then
  SIGTERM with the grace period: 0 failure answers, 0 lost;
- then one bridge SIGKILLed mid-load: what each provider saw through nginx
  until the endpoint is gone and a replacement is ready; 0 lost.
"""
import json
import os
import pathlib
import re
import signal
import sys
import tempfile
import time
import urllib.request

import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "lib"))
import dockerenv  # noqa: E402
import dockerload  # noqa: E402
from dockerenv import LOCAL, SOURCE_DIR, compose, docker  # noqa: E402
from nginx import Nginx  # noqa: E402

BOOTSTRAP = "127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094"
IMAGE = "webhook-bridge:local"
K8S = SOURCE_DIR / "deploy" / "k8s"


def report(text):
    dockerenv.report("rolling", text)


def pod_spec():
    doc = yaml.safe_load((K8S / "deployment.yaml").read_text())
    return doc["spec"], doc["spec"]["template"]["spec"]


def shoperti_on_a_path(ini):
    """The ConfigMap's bridge.ini with [provider.shoperti] on auth = path (its
    API cannot be reached from here), everything else as written."""
    out, section = [], None
    for line in ini.splitlines():
        m = re.match(r"\s*\[([^\]]+)\]", line)
        if m:
            section = m.group(1)
            if section == "provider.shoperti":
                out += [line, "auth = path", "auth.secret_env = SHOPERTI_PATH_TOKEN"]
                continue
        if section == "provider.shoperti" and re.match(r"\s*auth[ .=]", line):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def secret_values():
    """The example Secret's values (deploy/k8s/secret.example.yaml), by key."""
    doc = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    return doc["metadata"]["name"], doc["stringData"]


class Pods:
    """Bridge containers as the pod template describes them."""

    def __init__(self, network):
        self.deployment, self.spec = pod_spec()
        self.container = self.spec["containers"][0]
        self.network = network
        name, values = secret_values()
        self.env = {}
        for e in self.container["env"]:
            ref = e["valueFrom"]["secretKeyRef"]
            assert ref["name"] == name
            self.env[e["name"]] = values[ref["key"]]
        # Shoperti on a path here (shoperti_on_a_path): its token
        self.env["SHOPERTI_PATH_TOKEN"] = "rolling-test-shoperti-path-token"
        self.dir = tempfile.mkdtemp(prefix="wb-rolling-")
        os.chmod(self.dir, 0o755)
        ini = shoperti_on_a_path((K8S / "bridge.ini").read_text())
        pathlib.Path(self.dir, "bridge.ini").write_text(ini)
        os.chmod(pathlib.Path(self.dir, "bridge.ini"), 0o644)
        self.n = 0
        self.names = []

    def run_args(self):
        sc, psc = self.container["securityContext"], self.spec["securityContext"]
        assert psc["runAsUser"] == 10001 and sc["readOnlyRootFilesystem"]
        assert sc["capabilities"]["drop"] == ["ALL"] and sc["allowPrivilegeEscalation"] is False
        args = ["--user", f"{psc['runAsUser']}:{psc['runAsGroup']}", "--read-only",
                "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
        mounts = {m["name"]: m for m in self.container["volumeMounts"]}
        for vol in self.spec["volumes"]:
            m = mounts[vol["name"]]
            if "configMap" in vol:
                args += ["-v", f"{self.dir}:{m['mountPath']}:ro"]
            elif "emptyDir" in vol:
                size = vol["emptyDir"].get("sizeLimit", "16Mi").replace("Mi", "m")
                args += ["--tmpfs", f"{m['mountPath']}:size={size}"]
        env = dict(self.env)
        env["BRIDGE_KAFKA_BROKERS"] = "kafka-0:9092,kafka-1:9092,kafka-2:9092"
        for k, v in env.items():
            args += ["-e", f"{k}={v}"]
        for p in self.container["ports"]:
            args += ["-p", f"{LOCAL}::{p['containerPort']}"]
        grace = self.spec["terminationGracePeriodSeconds"]
        args += ["--stop-timeout", str(grace), "--network", self.network]
        return args

    def start(self):
        self.n += 1
        name = f"wb-rolling-{os.getpid()}-{self.n}"
        docker("run", "-d", "--name", name, *self.run_args(), IMAGE, *self.container["args"])
        self.names.append(name)
        return name

    def port(self, name, container_port):
        out = docker("port", name, f"{container_port}/tcp").stdout.split()[0]
        return int(out.rsplit(":", 1)[1])

    def http_port(self, name):
        return self.port(name, self.container["ports"][0]["containerPort"])

    def ready(self, name):
        probe = self.container["readinessProbe"]["httpGet"]
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        port = self.port(name, ports[probe["port"]])
        try:
            with urllib.request.urlopen(f"http://{LOCAL}:{port}{probe['path']}", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_ready(self, name, timeout=60):
        t = time.monotonic()
        while not self.ready(name):
            state = json.loads(docker("inspect", "-f", "{{json .State}}", name).stdout)
            assert state["Running"] and time.monotonic() - t < timeout, \
                docker("logs", name, check=False).stderr[-3000:]
            time.sleep(0.2)
        return time.monotonic() - t

    def terminate(self, name):
        """preStop, then SIGTERM and the grace period (docker stop -t)."""
        pre = self.container["lifecycle"]["preStop"]["exec"]["command"]
        docker("exec", name, *pre, timeout=60)
        t = time.monotonic()
        grace = self.spec["terminationGracePeriodSeconds"]
        docker("stop", "-t", str(grace), name, timeout=grace + 30)
        code = json.loads(docker("inspect", "-f", "{{json .State}}", name).stdout)["ExitCode"]
        return code, time.monotonic() - t

    def remove(self, name):
        docker("rm", "-f", name, check=False)
        if name in self.names:
            self.names.remove(name)

    def close(self):
        for name in list(self.names):
            self.remove(name)


def set_upstreams(lb, ports):
    """The Service's endpoints changed: nginx's upstreams rewritten, reloaded
    gracefully (old workers finish their requests)."""
    conf = pathlib.Path(lb.dir, "nginx.conf")
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in ports)
    text = re.sub(r"(upstream bridges \{\n\s*\n?)(?:\s*server [^\n]*\n)+",
                  lambda m: m.group(1) + servers + "\n", conf.read_text())
    conf.write_text(text)
    lb.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)  # the new workers take over


@pytest.fixture(scope="module")
def kafka():
    engine = dockerenv.require()
    compose("down", "-v", "--remove-orphans", timeout=300, check=False)
    leftovers = dockerenv.Leftovers()
    t = time.monotonic()
    compose("up", "-d", "kafka-init", timeout=900)
    dockerenv.wait_stack(timeout=300, services=["kafka-0", "kafka-1", "kafka-2", "kafka-init"])
    report(f"\nthe compose stack's Kafka up, topics made: {time.monotonic() - t:.1f} s")
    network = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Networks}}",
                                dockerenv.container("kafka-0")).stdout)
    yield engine, next(iter(network))
    if not dockerenv.keep():
        compose("down", "-v", "--remove-orphans", timeout=300, check=False)
        leftovers.clean()


@pytest.fixture
def pods(kafka):
    if not dockerenv.image_exists(IMAGE):
        docker("build", "--force-rm", "-q", "-f", "deploy/Dockerfile", "--target", "bridge",
               "-t", IMAGE, ".", timeout=1800)
    p = Pods(kafka[1])
    yield p
    p.close()


def test_rolling_update(pods):
    deployment, _ = pod_spec()
    strategy = deployment["strategy"]["rollingUpdate"]
    assert strategy == {"maxUnavailable": 0, "maxSurge": 1}
    old = [pods.start() for _ in range(deployment["replicas"])]
    for name in old:
        pods.wait_ready(name)
    live = {name: pods.http_port(name) for name in old}
    with Nginx(list(live.values())) as lb:
        load = dockerload.StackLoad(port=lb.port, admin_port=None, senders=2, pause=0.01,
                                        keepalive=False, env=pods.env).start()
        time.sleep(5)
        steps = []
        for name in old:
            t = load.mark(f"new pod for {name[-1]}")
            new = pods.start()
            took = pods.wait_ready(new)
            live[new] = pods.http_port(new)
            set_upstreams(lb, live.values())
            del live[name]
            set_upstreams(lb, live.values())
            load.mark(f"old {name[-1]} out of the Service")
            code, stop_s = pods.terminate(name)
            steps.append(f"pod {name[-1]} replaced: new one ready in {took:.1f} s, the old one "
                         f"exited {code} {stop_s:.1f} s after SIGTERM (preStop "
                         f"{pods.container['lifecycle']['preStop']['exec']['command'][-1]} s before)")
            assert code == 0
            pods.remove(name)
            assert t
        time.sleep(5)
        result = load.stop(BOOTSTRAP, "rolling update: 3 bridge containers behind nginx, "
                                      "replaced one at a time")
    report("\n" + result.table(extra=steps))
    failures = [a for a in result.answers if a.status != 200]
    assert not failures, sorted({(a.provider, a.status, a.error) for a in failures}, key=str)
    assert result.receipts > 300
    assert result.spooled == [] and result.wrong == 0 and result.lost == 0


def test_bridge_sigkilled_mid_load(pods):
    deployment, _ = pod_spec()
    names = [pods.start() for _ in range(deployment["replicas"])]
    for name in names:
        pods.wait_ready(name)
    live = {name: pods.http_port(name) for name in names}
    with Nginx(list(live.values())) as lb:
        load = dockerload.StackLoad(port=lb.port, admin_port=None, senders=2, pause=0.01,
                                        keepalive=False, env=pods.env).start()
        time.sleep(5)
        victim = names[0]
        load.mark("docker kill -s KILL one bridge")
        docker("kill", "-s", "KILL", victim)
        # the endpoints controller: the dead pod fails its probe and leaves
        # the Service; the kubelet starts a new container, ready, then added
        period = pods.container["readinessProbe"]["periodSeconds"]
        threshold = pods.container["readinessProbe"]["failureThreshold"]
        time.sleep(min(2.0, period * threshold))
        del live[victim]
        set_upstreams(lb, live.values())
        load.mark("out of the Service")
        new = pods.start()
        took = pods.wait_ready(new)
        live[new] = pods.http_port(new)
        set_upstreams(lb, live.values())
        load.mark("replacement ready, in the Service")
        pods.remove(victim)
        time.sleep(5)
        result = load.stop(BOOTSTRAP, "one of 3 bridge containers SIGKILLed mid-load, behind nginx")
    failures = [a for a in result.answers if a.status != 200]
    report("\n" + result.table(extra=[f"replacement ready {took:.1f} s after its start",
                                     f"failure answers: {len(failures)} " +
                                     str(sorted({(a.provider, a.status, a.error)
                                                 for a in failures}, key=str))]))
    # what the providers saw is the table; what must hold: every 200 in Kafka
    assert result.wrong == 0 and result.lost == 0
    assert result.receipts > 300
