"""deploy/Dockerfile built and run for real on a Docker engine.

- both targets build (bridge, consumer); the build time is printed, first as
  the machine's layer cache leaves it (cold on a fresh machine, or with
  WB_DOCKER_COLD=1: --no-cache), then again with every layer cached; the
  image sizes are printed and the runtime image holds its size budget;
- the bridge runs as Kubernetes and compose run it: user 10001, read-only
  root, no capabilities, no-new-privileges, a tmpfs /tmp; --version names
  librdkafka 2.14.2 (deploy/librdkafka.sh's build, not Debian 12's 2.0.2);
  --check-config accepts the image's and the compose stack's configuration
  and refuses a bad setting by name;
- compose's health check (the image has none of its own) goes healthy, a
  webhook through the published port (127.0.0.1) is answered 200 with an
  offset (the embedded Kafka: no brokers set), and SIGTERM ends the container with exit 0 within the drain bound."""
import json
import os
import pathlib
import shlex
import sys
import time
import urllib.request

import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "lib"))
import dockerenv  # noqa: E402
from dockerenv import LOCAL, SOURCE_DIR, docker  # noqa: E402

# The runtime image (debian:12-slim, about 75 MB, plus the shared libraries and
# one binary): deploy/README.md, "Docker and compose", says what is in it.
SIZE_BUDGET_MB = 100
BRIDGE, CONSUMER = "webhook-bridge:local", "webhook-consumer:local"  # compose's tags
HARDENED = ["--user", "10001:10001", "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--tmpfs", "/tmp"]
# the secrets the image's bridge.ini names (auth.secret_env), test values
SECRETS = {"PIRIOD_PATH_TOKEN": "image-test-piriod", "SHOPERTI_API_TOKEN": "image-test-shoperti",
           "BONIFIQ_TOKEN": "image-test-bonifiq"}


def report(text):
    dockerenv.report("image", text)


def env_args(env):
    return [a for k, v in env.items() for a in ("-e", f"{k}={v}")]


@pytest.fixture(scope="module")
def engine():
    return dockerenv.require()


def build(target, tag, no_cache=False):
    t = time.monotonic()
    docker("build", "--force-rm", "-q", *(["--no-cache"] if no_cache else []),
           "-f", "deploy/Dockerfile", "--target", target, "-t", tag, ".", timeout=1800)
    return time.monotonic() - t


@pytest.fixture(scope="module")
def images(engine):
    cold = os.environ.get("WB_DOCKER_COLD") == "1"
    had = dockerenv.image_exists(BRIDGE)
    leftovers = dockerenv.Leftovers()
    first = {"bridge": build("bridge", BRIDGE, no_cache=cold),
             "consumer": build("consumer", CONSUMER)}
    cached = {"bridge": build("bridge", BRIDGE), "consumer": build("consumer", CONSUMER)}
    how = ("cold (--no-cache)" if cold else
           "with the layer cache this machine had" + ("" if had else " (no image yet: cold)"))
    report(f"\nbase images made or checked: " +
          ", ".join(f"{k} {v:.1f} s" for k, v in engine.base_took.items()))
    report(f"build, {how}: bridge {first['bridge']:.1f} s, consumer {first['consumer']:.1f} s")
    report(f"build, every layer cached: bridge {cached['bridge']:.1f} s, "
          f"consumer {cached['consumer']:.1f} s")
    yield first, cached
    leftovers.clean()


def test_sizes_and_budget(images):
    sizes = {tag: dockerenv.image_size(tag) / 1e6 for tag in
             ("debian:12-slim", BRIDGE, CONSUMER, "apache/kafka:" + kafka_version())}
    for tag, mb in sizes.items():
        report(f"image {tag}: {mb:.1f} MB")
    report(f"runtime image budget: {SIZE_BUDGET_MB} MB ({sizes[BRIDGE]:.1f} MB used)")
    assert sizes[BRIDGE] <= SIZE_BUDGET_MB
    assert sizes[CONSUMER] <= SIZE_BUDGET_MB
    _, cached = images
    assert cached["bridge"] < 60, "a fully cached build should not compile anything"


def kafka_version():
    import re
    return re.search(r"apache/kafka:(\S+)", (SOURCE_DIR / "docker-compose.yml").read_text()).group(1)


def run(*args, env=None, check=True, image=BRIDGE):
    return docker("run", "--rm", *HARDENED, *env_args(env or {}), image, *args,
                  timeout=120, check=check)


def test_version_names_the_librdkafka_built(images):
    out = run("--version").stdout
    report(out.strip())
    assert out.startswith("webhook-bridge ")
    assert "librdkafka 2.14.2" in out, out


def test_image_config_checks(images):
    p = run("--check-config", env=SECRETS)
    assert p.returncode == 0, p.stdout + p.stderr


def compose_bridge():
    return yaml.safe_load((SOURCE_DIR / "docker-compose.yml").read_text())["services"]["bridge"]


def test_compose_config_checks_in_the_image(images):
    svc = compose_bridge()
    env = {k: str(v) for k, v in svc["environment"].items()}
    mounts = [a for v in svc["volumes"] if v.startswith("./")
              for a in ("-v", str(SOURCE_DIR / v[2:].split(":")[0]) + ":" + v.split(":", 1)[1])]
    p = docker("run", "--rm", *HARDENED, *env_args(env), *mounts, BRIDGE, "--check-config",
               timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr


def test_bad_setting_refused_by_name(images):
    p = run("--check-config", env={**SECRETS, "BRIDGE_LISTEN": "nowhere"}, check=False)
    assert p.returncode != 0
    assert "BRIDGE_LISTEN" in p.stdout + p.stderr or "listen" in p.stdout + p.stderr


def test_runs_hardened_and_goes_healthy(images):
    health = compose_bridge()["healthcheck"]["test"]
    assert health[0] == "CMD"
    name = f"wb-image-test-{os.getpid()}"
    # no brokers: the embedded Kafka (the image's bridge.ini names the compose
    # stack's, which this test does not start)
    docker("run", "-d", "--name", name, *HARDENED, *env_args({**SECRETS, "BRIDGE_KAFKA_BROKERS": ""}),
           "-p", f"{LOCAL}::8080", "-p", f"{LOCAL}::9090",
           "--health-cmd", shlex.join(health[1:]), "--health-interval", "1s",
           "--health-retries", "3", "--health-timeout", "3s", BRIDGE)
    try:
        t = time.monotonic()
        state = None
        while time.monotonic() - t < 60:
            state = json.loads(docker("inspect", "-f", "{{json .State}}", name).stdout)
            if state.get("Health", {}).get("Status") == "healthy" or not state["Running"]:
                break
            time.sleep(0.5)
        assert state["Health"]["Status"] == "healthy", \
            (state, docker("logs", name, check=False).stderr[-3000:])
        report(f"healthy {time.monotonic() - t:.1f} s after docker run")
        assert docker("exec", name, "id", "-u").stdout.strip() == "10001"
        assert docker("exec", name, "touch", "/etc/x", check=False).returncode != 0
        assert docker("exec", name, "touch", "/tmp/x", check=False).returncode == 0
        caps = docker("exec", name, "grep", "^CapEff", "/proc/1/status").stdout.split()[1]
        assert int(caps, 16) == 0
        port = docker("port", name, "8080/tcp").stdout.split()[0].rsplit(":", 1)[1]
        req = urllib.request.Request(
            f"http://{LOCAL}:{port}/webhooks/piriod/{SECRETS['PIRIOD_PATH_TOKEN']}",
            data=b'{"event":"payment.created","object_id":"pay_image"}',
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            receipt = json.loads(r.read())
        assert r.status == 200 and receipt["offset"] >= 0, receipt
        t = time.monotonic()
        docker("stop", "-t", "30", name, timeout=60)
        code = json.loads(docker("inspect", "-f", "{{json .State}}", name).stdout)["ExitCode"]
        report(f"docker stop: exit {code} after {time.monotonic() - t:.1f} s")
        assert code == 0
    finally:
        docker("rm", "-f", name, check=False)
