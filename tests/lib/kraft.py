"""kraft.py - docker-compose.yml's Kafka nodes (kafka-0..2: KRaft, broker and
controller each) as local java processes on 127.0.0.1, for the tests that need
real Apache Kafka (the fault suite, tests/kafka; the limits; the secured suite).

Each node is configured as its container would be: its compose environment,
addresses made local (every compose host:port gets a port of its own here), goes
through the image's kafka.docker.KafkaDockerWrapper (KAFKA_FOO_BAR -> foo.bar in
server.properties, storage formatted), so the compose file's settings are what
runs. Ports stay reserved for the cluster's lifetime (faultproxy.reserve_port),
so a node restarts on its own ports and clusters in one session never collide.

  kafka_libs() -> (path, complete)  the jars: $WB_KAFKA_LIBS if set, else
      ${WB_KAFKA_CACHE:-~/.cache/webhook-bridge}/kafka-<version>/libs, the version
      that of compose's apache/kafka image; complete once libs.complete is next
      to it (deploy/install-deps.sh --test fetches them)
  require() -> path  the jars, else the calling test skips (no jars, no java);
      with CI set (CI=true) or WB_REQUIRE_REAL_KAFKA=1 it fails instead
  Cluster(overrides=None, proxied=(), heap=None, keep=False)
      overrides  {property: value} for every node, "auto.create.topics.enable"
                 or "KAFKA_AUTO_CREATE_TOPICS_ENABLE" form
      proxied    node ids whose EXTERNAL listener is advertised as a FaultProxy
                 in front of it (INTERNAL and CONTROLLER traffic is direct)
      heap       replaces compose's KAFKA_HEAP_OPTS, e.g. "-Xmx384m"
      keep       leave the work directory (node logs, data) behind
    .bootstrap   the EXTERNAL listeners as advertised (for clients); .ids (0, 1, 2)
    .work        the work directory: <service>/server.log, data, final/server.properties
    start()                        configure and start every node
    wait_ready(timeout=120) -> s   until metadata lists every broker
    create_topics(names, partitions=6, rf=3, configs={"min.insync.replicas": "2"},
                  timeout=60)      and wait until every partition has a leader
    leaders(topic) -> {partition: node id}; isr(topic) -> {partition: [node ids]}
    wait_isr(topic, timeout=60) -> s  until every ISR holds all the replicas
    kill(i)     SIGKILL, waits for the exit
    pause(i)    SIGSTOP (waits until stopped); resume(i) SIGCONT
    terminate(i, timeout=60) -> exit status  SIGTERM: controlled shutdown
    start_node(i)  the stopped node again, same data and ports
    restart(i, timeout=120) -> s   terminate if running, start_node, wait_node_up
    wait_node_up(i, timeout=120) -> s  broker i in metadata, answering on its port
    node_pid(i); running(i); proxy(i) -> FaultProxy; server_log(i)
    quorum_leader() -> node id     the active controller (kafka-metadata-quorum)
    settings_not_taken() -> [str]  server.properties lines Kafka did not take
    local(service, host, port) -> "127.0.0.1:N"  compose's host:port seen from service
    stop()  every node killed (paused ones too), proxies closed; also on `with` exit
  SecureCluster(users=None, overrides=None, heap="-Xmx384m", keep=False)
      one node (not compose's) whose client listeners are SASL_SSL SCRAM-SHA-512/256,
      SASL_SSL PLAIN, SSL with client certificates and one with a wrong-host
      certificate, TLS made by openssl (tlsca.py), StandardAuthorizer; see its
      docstring (tests/secured/)
"""
import concurrent.futures
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from faultproxy import FaultProxy, reserve_port

SOURCE_DIR = pathlib.Path(os.environ.get("WB_SOURCE_DIR") or pathlib.Path(__file__).resolve().parents[2])
COMPOSE = SOURCE_DIR / "docker-compose.yml"
CLIENT_LISTENER = "EXTERNAL"  # compose's listener for clients outside its network
# JVMs that only run a command start faster with C1 alone and the serial collector
TOOL_JVM = ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
LOG4J = ("rootLogger.level = INFO\nrootLogger.appenderRef.out.ref = OUT\n"
         "appender.out.type = Console\nappender.out.name = OUT\n"
         "appender.out.layout.type = PatternLayout\n"
         "appender.out.layout.pattern = [%d] %p %m (%c)%n\n")
# A node dies with this process, even a killed one (setpriv is util-linux). The
# parent-death signal follows the thread that started the node, so one thread
# that lives as long as the process starts them all.
DEATHSIG = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []
_spawner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kraft-spawn")


def kafka_version():
    m = re.search(r"apache/kafka:(\d+\.\d+\.\d+)", COMPOSE.read_text())
    if not m:
        raise RuntimeError(f"no apache/kafka:X.Y.Z image in {COMPOSE}")
    return m.group(1)


def kafka_libs():
    """(folder of the Kafka jars, whether it is complete)."""
    if os.environ.get("WB_KAFKA_LIBS"):
        libs = pathlib.Path(os.environ["WB_KAFKA_LIBS"]).expanduser()
        return libs, libs.is_dir() and any(libs.glob("kafka_2.13-*.jar"))
    cache = pathlib.Path(os.environ.get("WB_KAFKA_CACHE") or pathlib.Path.home() / ".cache/webhook-bridge")
    home = cache / f"kafka-{kafka_version()}"
    return home / "libs", (home / "libs.complete").is_file()


def required():
    """Whether a real-Kafka test that cannot run fails rather than skips."""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return ci or os.environ.get("WB_REQUIRE_REAL_KAFKA") == "1"


def require():
    """The jars for a test; skips it (fails it under CI) when Kafka cannot run here."""
    import pytest

    libs, complete = kafka_libs()
    problem = None
    if not complete:
        problem = f"no Kafka jars in {libs}: run deploy/install-deps.sh --test"
    elif shutil.which("java") is None:
        problem = "java is not installed"
    if problem and required():
        pytest.fail(f"{problem} (real Kafka is required: CI / WB_REQUIRE_REAL_KAFKA=1)")
    if problem:
        pytest.skip(problem)
    return libs


def env_name(key):
    """The KAFKA_* variable of a server property: the inverse of the image's
    rule (_ -> ., __ -> _, ___ -> -)."""
    if key.startswith("KAFKA_"):
        return key
    return "KAFKA_" + key.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def listener(listeners, name):
    """host:port of listener NAME in a listeners value."""
    m = re.search(rf"(?:^|,){name}://([^,]*)", listeners)
    if not m:
        raise RuntimeError(f"no {name} listener in {listeners}")
    return m.group(1)


def _env(environment):
    if isinstance(environment, list):
        return dict(e.split("=", 1) if "=" in e else (e, "") for e in environment)
    return {k: "" if v is None else str(v) for k, v in (environment or {}).items()}


class Node:
    def __init__(self, service, env, directory):
        self.service, self.env, self.dir = service, env, directory
        self.id = int(env["KAFKA_NODE_ID"])
        self.direct = listener(env["KAFKA_LISTENERS"], CLIENT_LISTENER)
        self.proc = None
        self.up = False  # started and not stopped by us: an exit is a crash
        self.paused = False
        self.proxy = None


class Cluster:
    """docker-compose.yml's Kafka nodes on 127.0.0.1 (see the module docstring)."""

    def __init__(self, overrides=None, proxied=(), heap=None, keep=False):
        import yaml

        libs, complete = kafka_libs()
        if not complete:
            raise RuntimeError(f"no Kafka jars in {libs}: run deploy/install-deps.sh --test")
        self.libs, self.keep = libs, keep
        self.work = pathlib.Path(tempfile.mkdtemp(prefix="wb-kraft-"))
        self._ports = {}  # (service, compose port) -> reserved socket
        self._nodes = {}
        try:
            compose = yaml.safe_load(COMPOSE.read_text())
            for service in sorted(s for s in compose["services"] if re.fullmatch(r"kafka-\d+", s)):
                env = _env(compose["services"][service]["environment"])
                for key in ("KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS",
                            "KAFKA_CONTROLLER_QUORUM_VOTERS"):
                    env[key] = self.remap(service, env[key])
                env["KAFKA_LOG_DIRS"] = str(self.work / service / "data")  # compose: a volume
                env.setdefault("KAFKA_HEAP_OPTS", "-Xmx1G -Xms1G")  # kafka-server-start.sh's
                if heap:
                    env["KAFKA_HEAP_OPTS"] = heap
                env.update({env_name(k): str(v) for k, v in (overrides or {}).items()})
                node = Node(service, env, self.work / service)
                if node.id in proxied:
                    node.proxy = FaultProxy(node.direct)
                    env["KAFKA_ADVERTISED_LISTENERS"] = re.sub(
                        rf"(?:^|(?<=,)){CLIENT_LISTENER}://[^,]*",
                        f"{CLIENT_LISTENER}://{node.proxy.address}", env["KAFKA_ADVERTISED_LISTENERS"])
                self._nodes[node.id] = node
        except BaseException:
            self.stop()
            raise
        self.ids = sorted(self._nodes)
        self.bootstrap = ",".join(listener(self._nodes[i].env["KAFKA_ADVERTISED_LISTENERS"],
                                           CLIENT_LISTENER) for i in self.ids)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---- addresses -------------------------------------------------------------

    def local(self, service, host, port):
        """Where compose's host:port, as seen from service, is here."""
        target = service if host in ("", "localhost", "0.0.0.0") else host
        key = (target, int(port))
        if key not in self._ports:
            self._ports[key] = reserve_port()
        return f"127.0.0.1:{self._ports[key].getsockname()[1]}"

    def remap(self, service, value):
        """Every host:port of a compose value (listeners, voters) made local."""
        return re.sub(r"(?:^|(?<=[/@,]))([A-Za-z0-9.-]*):(\d+)",
                      lambda m: self.local(service, m.group(1), m.group(2)), value)

    # ---- processes -------------------------------------------------------------

    def start(self):
        """Runs the image's setup for every node (in parallel), then starts them."""
        setups = []
        for node in self._nodes.values():
            for sub in ("defaults", "mounted", "final", "data"):
                (node.dir / sub).mkdir(parents=True)
            (node.dir / "log4j2.properties").write_text(LOG4J)
            setups.append((node, subprocess.Popen(
                ["java", *TOOL_JVM, "-cp", f"{self.libs}/*", "kafka.docker.KafkaDockerWrapper",
                 "setup", "--default-configs-dir", str(node.dir / "defaults"),
                 "--mounted-configs-dir", str(node.dir / "mounted"),
                 "--final-configs-dir", str(node.dir / "final")],
                env={"PATH": os.environ["PATH"], **node.env}, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True)))
        for node, proc in setups:
            out, _ = proc.communicate(timeout=180)
            if proc.returncode != 0:
                raise AssertionError(f"{node.service}: the image's setup failed:\n{out}")
        for i in self.ids:
            self.start_node(i)

    def start_node(self, i):
        node = self._nodes[i]
        if self.running(i):
            raise RuntimeError(f"node {i} is running")
        with open(node.dir / "server.log", "a") as log:
            argv = [*DEATHSIG, "java", *node.env["KAFKA_HEAP_OPTS"].split(),
                    f"-Dlog4j2.configurationFile={node.dir / 'log4j2.properties'}",
                    "-cp", f"{self.libs}/*", "kafka.Kafka", str(node.dir / "final/server.properties")]
            node.proc = _spawner.submit(subprocess.Popen, argv, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT).result()
        node.up, node.paused = True, False

    def running(self, i):
        proc = self._nodes[i].proc
        return proc is not None and proc.poll() is None

    def node_pid(self, i):
        return self._nodes[i].proc.pid

    def proxy(self, i):
        return self._nodes[i].proxy

    def kill(self, i):
        node = self._nodes[i]
        node.up = False
        node.proc.kill()
        node.proc.wait()
        node.paused = False

    def pause(self, i):
        node = self._nodes[i]
        os.kill(node.proc.pid, signal.SIGSTOP)
        node.paused = True
        deadline = time.monotonic() + 5
        while _state(node.proc.pid) not in ("T", "t"):
            if time.monotonic() > deadline:
                raise AssertionError(f"node {i} did not stop")
            time.sleep(0.01)

    def resume(self, i):
        node = self._nodes[i]
        os.kill(node.proc.pid, signal.SIGCONT)
        node.paused = False

    def terminate(self, i, timeout=60):
        """SIGTERM (the broker's controlled shutdown); its exit status."""
        node = self._nodes[i]
        node.up = False
        node.proc.terminate()
        if node.paused:
            self.resume(i)
        try:
            return node.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait()
            raise AssertionError(f"node {i} still running {timeout} s after SIGTERM (killed)")

    def restart(self, i, timeout=120):
        """Controlled restart; seconds from the stop until it serves again."""
        t = time.monotonic()
        if self.running(i):
            self.terminate(i)
        self.start_node(i)
        self.wait_node_up(i, timeout)
        return time.monotonic() - t

    def stop(self):
        """Kills every node (no clean shutdown: the data is thrown away, and a
        node without its quorum would wait for one) and closes the proxies."""
        for node in self._nodes.values():
            node.up = False
            if node.proc is not None and node.proc.poll() is None:
                if node.paused:
                    os.kill(node.proc.pid, signal.SIGCONT)
                node.proc.kill()
            if node.proc is not None:
                node.proc.wait()
            if node.proxy is not None:
                node.proxy.close()
        for s in self._ports.values():
            s.close()
        self._ports.clear()
        if not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def server_log(self, i):
        path = self._nodes[i].dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _check_alive(self):
        for node in self._nodes.values():
            if node.up and node.proc.poll() is not None:
                raise AssertionError(f"node {node.id} exited {node.proc.returncode}:\n"
                                     f"{self.server_log(node.id)[-4000:]}")

    # ---- metadata --------------------------------------------------------------

    def _metadata(self, via=None, timeout=5):
        """Cluster metadata from the given nodes (default: those running and
        not paused), straight to their EXTERNAL listeners, never a proxy."""
        via = [i for i in self.ids if self._nodes[i].up and not self._nodes[i].paused] \
            if via is None else via
        admin = AdminClient({"bootstrap.servers": ",".join(self._nodes[i].direct for i in via),
                             "log_level": 0})
        # all topics: a request naming one might create it (auto.create.topics.enable)
        return admin.list_topics(timeout=timeout)

    def _poll(self, what, check, timeout, via=None):
        """Polls check(metadata) until it returns a true value; raises after timeout."""
        t = time.monotonic()
        while True:
            self._check_alive()
            try:
                md = self._metadata(via)
                if check(md):
                    return time.monotonic() - t
                last = f"brokers {sorted(md.brokers)}"
            except KafkaException as e:
                last = e
            if time.monotonic() - t > timeout:
                raise AssertionError(f"{what} not within {timeout} s (last: {last})")
            time.sleep(0.1)

    def wait_ready(self, timeout=120):
        """Seconds until every broker is registered (in the metadata)."""
        want = set(self.ids)
        return self._poll("all brokers registered", lambda md: set(md.brokers) == want, timeout)

    def wait_node_up(self, i, timeout=120):
        """Seconds until broker i answers metadata on its own port and the other
        running nodes list it (unfenced). A started broker opens its client port
        once unfenced; a resumed one answers at once, from a stale cache, so the
        others' view is what tells whether it is back."""
        t = time.monotonic()
        self._poll(f"node {i} answering", lambda md: i in md.brokers, timeout, via=[i])
        others = [j for j in self.ids if j != i and self._nodes[j].up and not self._nodes[j].paused]
        if others:
            self._poll(f"node {i} listed by {others}", lambda md: i in md.brokers,
                       timeout - (time.monotonic() - t), via=others)
        return time.monotonic() - t

    def _partitions(self, topic):
        md = self._metadata().topics.get(topic)
        if md is None or md.error is not None:
            raise AssertionError(f"topic {topic}: {md.error if md else 'not in the metadata'}")
        return md.partitions

    def leaders(self, topic):
        return {p: m.leader for p, m in self._partitions(topic).items()}

    def isr(self, topic):
        return {p: sorted(m.isrs) for p, m in self._partitions(topic).items()}

    def wait_isr(self, topic, timeout=60):
        """Seconds until every partition of topic has all its replicas in sync."""
        def full(md):
            t = md.topics.get(topic)
            return t is not None and t.error is None and t.partitions and all(
                sorted(p.isrs) == sorted(p.replicas) for p in t.partitions.values())
        return self._poll(f"{topic} fully in sync", full, timeout)

    def create_topics(self, names, partitions=6, rf=3, configs=None, timeout=60):
        """Creates the topics (an existing one is fine) and waits for their leaders."""
        configs = {"min.insync.replicas": "2"} if configs is None else configs
        admin = AdminClient({"bootstrap.servers": ",".join(self._nodes[i].direct for i in self.ids
                                                           if self._nodes[i].up),
                             "log_level": 0})
        futures = admin.create_topics([NewTopic(n, partitions, rf, config=dict(configs))
                                       for n in names], operation_timeout=timeout)
        for name, f in futures.items():
            try:
                f.result(timeout)
            except KafkaException as e:
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise

        def led(md):
            return all(n in md.topics and md.topics[n].error is None
                       and len(md.topics[n].partitions) == partitions
                       and all(p.leader >= 0 for p in md.topics[n].partitions.values())
                       for n in names)
        self._poll(f"leaders for {names}", led, timeout)

    # ---- what Kafka made of the settings ---------------------------------------

    def quorum_leader(self):
        """The node id of the active controller (the KRaft quorum's leader),
        asked with Kafka's own kafka-metadata-quorum tool."""
        running = [i for i in self.ids if self.running(i) and not self._nodes[i].paused]
        bootstrap = ",".join(self._nodes[i].direct for i in running)
        res = subprocess.run(["java", *TOOL_JVM, "-cp", f"{self.libs}/*",
                              "org.apache.kafka.tools.MetadataQuorumCommand",
                              "--bootstrap-server", bootstrap, "describe", "--status"],
                             capture_output=True, text=True, timeout=60)
        m = re.search(r"^LeaderId:\s*(\d+)", res.stdout, re.M)
        if not m:
            raise AssertionError(f"no quorum leader: {res.stdout}{res.stderr}")
        return int(m.group(1))

    def settings_not_taken(self):
        """Lines of each server.properties that Kafka did not take as written: a
        name it does not know (ignored silently, so a typo in a KAFKA_* variable
        would go unnoticed) or a value it read otherwise. Compares with the first
        "KafkaConfig values:" block of each node's log."""
        out = []
        norm = lambda v: re.sub(r"[\[\]\s]", "", v)  # noqa: E731
        for i in self.ids:
            m = re.search(r"KafkaConfig values: *\n((?:\t.*\n)+)", self.server_log(i))
            if not m:
                out.append(f"node {i}: no 'KafkaConfig values' in its log")
                continue
            known = {}
            for line in m.group(1).splitlines():
                k, _, v = line.strip("\t").partition(" =")
                known[k.strip()] = v.strip()
            props = (self._nodes[i].dir / "final/server.properties").read_text()
            for line in props.splitlines():
                if not line.strip() or line.startswith("#"):
                    continue
                key, _, value = line.partition("=")
                if key not in known:
                    out.append(f"node {i}: unknown setting {key}")
                elif norm(known[key]) != norm(value):
                    out.append(f"node {i}: {key} = {value} was read as {known[key]}")
        return out


def _state(pid):
    """The process state letter from /proc (R, S, T...)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


# ---- a secured node ---------------------------------------------------------------

SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
# name -> security protocol of the client listeners of a SecureCluster
SECURE_LISTENERS = {"SCRAM": "SASL_SSL", "PLAIN": "SASL_SSL", "MTLS": "SSL",
                    "WRONGHOST": "SASL_SSL"}
SUPER_USER = "User:ANONYMOUS"  # the INTERNAL and CONTROLLER listeners' principal (PLAINTEXT)


class SecureCluster:
    """One Kafka node (broker and controller) whose client listeners are
    secured, with TLS made by openssl (tlsca.py) and an authorizer:

      SCRAM      SASL_SSL, SCRAM-SHA-512 and SCRAM-SHA-256 (users created at
                 format time: StorageTool format --add-scram)
      PLAIN      SASL_SSL, PLAIN (users in the listener's JAAS configuration)
      MTLS       SSL, client certificates required; principal = the CN
      WRONGHOST  SASL_SSL SCRAM, but its certificate names wrong.example only
      INTERNAL   PLAINTEXT on 127.0.0.1, the inter-broker listener, whose
                 principal (ANONYMOUS) is the super user: what the tests
                 themselves use to create topics, read records back and set ACLs

    StandardAuthorizer: a principal may do only what an ACL allows (acl()).

      SecureCluster(users={"bridge": "pw"}, overrides=None, heap="-Xmx384m", keep=False)
        users      every user gets SCRAM-SHA-512 and SCRAM-SHA-256 credentials and a
                   PLAIN password, all the same password
        overrides  {server property: value}
      .ca          tlsca.CA: the cluster CA (its .cert is what clients trust)
      .other_ca    a CA that signed nothing the broker has (untrusted)
      .client_cert(cn, expired=False) -> tlsca.Issued  a client certificate
      .address(listener) -> "127.0.0.1:N"; .bootstrap: INTERNAL's (super user)
      .client_config(mechanism, user=None, password=None, ca=None, cert=None) -> {}
          librdkafka properties for SCRAM-SHA-512|SCRAM-SHA-256|PLAIN|MTLS|WRONGHOST
      start(); wait_ready(timeout=90) -> s; create_topics(names, partitions=3,
          configs=None); acl(principal, operations, topic=None, group=None,
          prefixed=False, deny=False, cluster=False); server_log(); stop()
    """

    def __init__(self, users=None, overrides=None, heap="-Xmx384m", keep=False):
        import tlsca

        libs, complete = kafka_libs()
        if not complete:
            raise RuntimeError(f"no Kafka jars in {libs}: run deploy/install-deps.sh --test")
        self.libs, self.keep, self.heap = libs, keep, heap
        self.users = dict(users or {})
        self.work = pathlib.Path(tempfile.mkdtemp(prefix="wb-kraft-secure-"))
        self.proc = None
        self._ports = {}
        try:
            # reserved while the node lives (Java listens on them all the same)
            for name in ("CONTROLLER", "INTERNAL", *SECURE_LISTENERS):
                self._ports[name] = reserve_port()
            self._port = {n: s.getsockname()[1] for n, s in self._ports.items()}
            tls = self.work / "tls"
            self.ca = tlsca.CA(tls, "cluster-ca")
            self.other_ca = tlsca.CA(tls / "other", "untrusted-ca")
            self._server = self.ca.issue("broker", "localhost", ["127.0.0.1", "localhost"])
            self._wrong = self.ca.issue("broker-wrong-host", "wrong.example", ["wrong.example"])
            self._overrides = {k: str(v) for k, v in (overrides or {}).items()}
        except BaseException:
            self.stop()
            raise
        self.bootstrap = self.address("INTERNAL")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def address(self, listener):
        return f"127.0.0.1:{self._port[listener]}"

    def client_cert(self, cn, expired=False):
        return self.ca.issue(f"client-{cn}{'-expired' if expired else ''}", cn, client=True,
                             expired=expired)

    def client_config(self, mechanism, user=None, password=None, ca=None, cert=None):
        """librdkafka properties to reach listener of mechanism as user (with
        its password unless another is given), trusting ca (default the
        cluster's), presenting cert (MTLS: a certificate for user)."""
        conf = {"ssl.ca.location": str(ca or self.ca.cert)}
        if mechanism == "MTLS":
            cert = cert or self.client_cert(user or "bridge")
            conf.update({"bootstrap.servers": self.address("MTLS"), "security.protocol": "SSL",
                         "ssl.certificate.location": str(cert.cert),
                         "ssl.key.location": str(cert.key)})
            return conf
        listener = {"PLAIN": "PLAIN", "WRONGHOST": "WRONGHOST"}.get(mechanism, "SCRAM")
        user = user or "bridge"
        conf.update({"bootstrap.servers": self.address(listener), "security.protocol": "SASL_SSL",
                     "sasl.mechanisms": "SCRAM-SHA-512" if mechanism == "WRONGHOST" else mechanism,
                     "sasl.username": user,
                     "sasl.password": self.users.get(user, "") if password is None else password})
        return conf

    def properties(self):
        port = self._port
        scram_jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        plain_users = " ".join(f'user_{u}="{p}"' for u, p in self.users.items())
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{port['CONTROLLER']}",
            "controller.listener.names": "CONTROLLER",
            "listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in port.items()),
            "advertised.listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in port.items()
                                             if n != "CONTROLLER"),
            "listener.security.protocol.map": ",".join(
                [f"{n}:{p}" for n, p in SECURE_LISTENERS.items()]
                + ["CONTROLLER:PLAINTEXT", "INTERNAL:PLAINTEXT"]),
            "inter.broker.listener.name": "INTERNAL",
            "log.dirs": str(self.work / "data"),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self._server.bundle),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca.cert),
            "listener.name.wronghost.ssl.keystore.location": str(self._wrong.bundle),
            "listener.name.mtls.ssl.client.auth": "required",
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
            "listener.name.scram.sasl.enabled.mechanisms": ",".join(SCRAM_MECHANISMS),
            "listener.name.scram.scram-sha-512.sasl.jaas.config": scram_jaas,
            "listener.name.scram.scram-sha-256.sasl.jaas.config": scram_jaas,
            "listener.name.wronghost.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.wronghost.scram-sha-512.sasl.jaas.config": scram_jaas,
            "listener.name.plain.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.plain.plain.sasl.jaas.config":
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": SUPER_USER,
            "auto.create.topics.enable": "false",
            "num.partitions": "3",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
        }
        props.update(self._overrides)
        return props

    def start(self):
        """Writes server.properties, formats the storage (SCRAM users added)
        and starts the node."""
        import base64
        import uuid

        props = self.work / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        (self.work / "log4j2.properties").write_text(LOG4J)
        (self.work / "log4j2-tools.properties").write_text(LOG4J.replace("INFO", "WARN"))
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        scram = [a for u, p in self.users.items() for m in SCRAM_MECHANISMS
                 for a in ("--add-scram", f"{m}=[name={u},password={p}]")]
        res = subprocess.run(["java", *TOOL_JVM,
                              f"-Dlog4j2.configurationFile={self.work}/log4j2-tools.properties",
                              "-cp", f"{self.libs}/*", "kafka.tools.StorageTool", "format",
                              f"--cluster-id={cluster_id}", "-c", str(props), *scram],
                             capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise AssertionError(f"StorageTool format failed:\n{res.stdout}{res.stderr}")
        with open(self.work / "server.log", "a") as log:
            argv = [*DEATHSIG, "java", *self.heap.split(), "-XX:+UseSerialGC",
                    f"-Dlog4j2.configurationFile={self.work}/log4j2.properties",
                    "-cp", f"{self.libs}/*", "kafka.Kafka", str(props)]
            self.proc = _spawner.submit(subprocess.Popen, argv, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT).result()

    def server_log(self):
        path = self.work / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _admin(self):
        return AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})

    def _poll(self, what, check, timeout):
        t = time.monotonic()
        last = None
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the node exited {self.proc.returncode}:\n"
                                     f"{self.server_log()[-4000:]}")
            try:
                if check(self._admin().list_topics(timeout=5)):
                    return time.monotonic() - t
            except KafkaException as e:
                last = e
            if time.monotonic() - t > timeout:
                raise AssertionError(f"{what} not within {timeout} s (last: {last})")
            time.sleep(0.1)

    def wait_ready(self, timeout=90):
        """Seconds until the broker is registered and every listener accepts."""
        import socket

        t = time.monotonic()
        self._poll("the broker registered", lambda md: 1 in md.brokers, timeout)
        for name in SECURE_LISTENERS:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", self._port[name]), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() - t > timeout:
                        raise AssertionError(f"listener {name} never accepted")
                    time.sleep(0.1)
        return time.monotonic() - t

    def create_topics(self, names, partitions=3, configs=None, timeout=60):
        admin = self._admin()  # alive until every future is done
        futures = admin.create_topics(
            [NewTopic(n, partitions, 1, config=dict(configs or {})) for n in names],
            operation_timeout=timeout)
        for f in futures.values():
            try:
                f.result(timeout)
            except KafkaException as e:
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        self._poll(f"leaders for {names}", lambda md: all(
            n in md.topics and md.topics[n].error is None
            and all(p.leader >= 0 for p in md.topics[n].partitions.values()) for n in names),
            timeout)

    def acl(self, principal, operations, topic=None, group=None, prefixed=False, deny=False,
            cluster=False):
        """Adds ALLOW (or DENY) ACLs for principal ("User:bridge"): operations
        (Write, Read, Describe, DescribeConfigs, All...) on the topic, group
        (names, or prefixes with prefixed) or cluster; Kafka's own AclCommand
        through the INTERNAL listener."""
        args = ["--bootstrap-server", self.bootstrap, "--add", "--force",
                "--deny-principal" if deny else "--allow-principal", principal]
        for op in operations:
            args += ["--operation", op]
        for t in ([topic] if isinstance(topic, str) else topic or []):
            args += ["--topic", t]
        for g in ([group] if isinstance(group, str) else group or []):
            args += ["--group", g]
        if cluster:
            args.append("--cluster")
        if prefixed:
            args += ["--resource-pattern-type", "prefixed"]
        res = subprocess.run(["java", *TOOL_JVM, "-cp", f"{self.libs}/*",
                              f"-Dlog4j2.configurationFile={self.work}/log4j2-tools.properties",
                              "org.apache.kafka.tools.AclCommand", *args],
                             capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise AssertionError(f"AclCommand {args} failed:\n{res.stdout}{res.stderr}")
        return res.stdout

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
        for s in self._ports.values():
            s.close()
        if not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)
