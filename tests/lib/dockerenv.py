"""dockerenv.py - the Docker engine, the images and the compose stack for the
tests that run the deployment for real (tests/deploy/test_docker_*.py).

  require() -> Engine  a Docker engine that answers, `docker compose`, and the
      images no registry can give here (debian:12-slim by debootstrap,
      apache/kafka:<version> the stand-in: deploy/docker/*.sh, each once);
      dockerd is started when none answers and stopped at exit (only the one
      started here). Skips the test when Docker cannot run; with CI set
      (CI=true) or WB_REQUIRE_DOCKER=1 it fails instead.
  docker(*args, timeout=..., check=True) -> CompletedProcess (text, captured)
  compose(*args, ...)   `docker compose ARGS` in the repository root: the
      project README's "Local stack" runs (its default project name)
  shell(command, ...)   a README command line, run by bash in the root
  image_size(tag) -> bytes; image_exists(tag)
  project_ps() -> {service: {"State", "Health", "ExitCode", "Name"}}
  wait_stack(timeout) -> seconds   until every service is healthy (kafka-init
      exited 0), or AssertionError with `docker compose ps` and logs
  container(service) -> the container name of a compose service
  Leftovers() ... .clean()  anonymous volumes and replaced images a test left
  report(name, text)    printed, and kept in $WB_BUILD_DIR/docker/NAME.txt for
      tests/run's log (ctest shows nothing of a test that passed)

WB_DOCKER_KEEP=1 leaves the stack as a test ends (`docker compose ps`, `logs`).
Every test address is on 127.0.0.1: docker-compose.yml publishes its ports
there only.
"""
import atexit
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

SOURCE_DIR = pathlib.Path(os.environ.get("WB_SOURCE_DIR") or pathlib.Path(__file__).resolve().parents[2])
DOCKER = shutil.which("docker") or "docker"
LOCAL = "127.0.0.1"

_engine = None


def required():
    """Whether a Docker test that cannot run fails rather than skips."""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return ci or os.environ.get("WB_REQUIRE_DOCKER") == "1"


def docker(*args, timeout=600, check=True, env=None, input=None):
    p = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout,
                       env=env, input=input, cwd=SOURCE_DIR)
    if check and p.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {p.returncode}:\n"
                             f"{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p


def compose(*args, timeout=900, check=True):
    if _compose_v1():
        p = subprocess.run(["docker-compose", *args], capture_output=True, text=True,
                           timeout=timeout, cwd=SOURCE_DIR)
        if check and p.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} exited {p.returncode}:\n"
                                 f"{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
        return p
    return docker("compose", *args, timeout=timeout, check=check)


def _compose_v1():
    """Debian's docker-compose 1.29, install-deps' fallback when Compose v2
    could not be built (README's `docker compose` is then `docker-compose`)."""
    return (subprocess.run([DOCKER, "compose", "version"], capture_output=True).returncode != 0
            and shutil.which("docker-compose") is not None)


def shell(command, timeout=900, check=True):
    """One command line as README shows it, run by bash in the repository root."""
    p = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                       timeout=timeout, cwd=SOURCE_DIR)
    if check and p.returncode != 0:
        raise AssertionError(f"{command!r} exited {p.returncode}:\n{p.stdout[-4000:]}\n"
                             f"{p.stderr[-4000:]}")
    return p


class Engine:
    """A dockerd that answers: the machine's, or one started here."""

    def __init__(self):
        self.proc = None
        self.log = None
        if self.answers():
            return
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        if not os.path.exists(dockerd):
            raise RuntimeError("no dockerd: run deploy/install-deps.sh --test (docker.io)")
        if os.geteuid() != 0:
            raise RuntimeError("no Docker engine answers, and starting dockerd needs root")
        self.log = tempfile.NamedTemporaryFile(prefix="wb-dockerd-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([dockerd], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        atexit.register(self.stop)
        deadline = time.monotonic() + 60
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                text = pathlib.Path(self.log.name).read_text()[-3000:]
                self.stop()
                raise RuntimeError(f"dockerd did not answer:\n{text}")
            time.sleep(0.5)

    @staticmethod
    def answers():
        try:
            return subprocess.run([DOCKER, "version", "-f", "{{.Server.Version}}"],
                                  capture_output=True, timeout=20).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def stop(self):
        """Stops the dockerd started here (never one that was running before)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def report(name, text):
    """Prints text and keeps it for tests/run's log ($WB_BUILD_DIR/docker/NAME.txt,
    appended): ctest shows no output of a test that passed."""
    print(text)
    out = os.environ.get("WB_BUILD_DIR")
    if out:
        d = pathlib.Path(out) / "docker"
        d.mkdir(exist_ok=True)
        path = d / f"{name}.txt"
        head = "" if path.exists() else f"--- tests/deploy/test_docker_{name}.py\n"
        with open(path, "a") as f:
            f.write(head + text.strip("\n") + "\n")


def _dangling_volumes():
    return set(docker("volume", "ls", "-q", "-f", "dangling=true").stdout.split())


def _image_id(tag):
    p = docker("image", "inspect", "-f", "{{.Id}}", tag, check=False)
    return p.stdout.strip() if p.returncode == 0 else None


class Leftovers:
    """What a test leaves behind, cleaned at its end: volumes no container
    uses any more that were not there before (a container's anonymous volumes:
    kafka-init's data directory), and the images that a rebuild of
    compose's tags replaced (the new ones and the layer cache stay)."""

    TAGS = ("webhook-bridge:local", "webhook-consumer:local")

    def __init__(self):
        self.volumes = _dangling_volumes()
        self.images = {t: _image_id(t) for t in self.TAGS}

    def clean(self):
        for v in sorted(_dangling_volumes() - self.volumes):
            docker("volume", "rm", v, check=False)
        for tag, old in self.images.items():
            if old and _image_id(tag) != old:
                docker("rmi", old, check=False)  # refused while a container uses it


def keep():
    """WB_DOCKER_KEEP=1: leave the stack up after the test (to look at it)."""
    return os.environ.get("WB_DOCKER_KEEP") == "1"


def compose_available():
    return compose("version", check=False).returncode == 0


def image_exists(tag):
    return docker("image", "inspect", tag, check=False).returncode == 0


def image_size(tag):
    return int(docker("image", "inspect", "-f", "{{.Size}}", tag).stdout)


def base_images():
    """debian:12-slim and the apache/kafka stand-in, made when missing; {name: seconds}."""
    took = {}
    for script in ("base-image.sh", "kafka-image.sh"):
        t = time.monotonic()
        p = subprocess.run([str(SOURCE_DIR / "deploy" / "docker" / script)], capture_output=True,
                           text=True, timeout=900, cwd=SOURCE_DIR)
        if p.returncode != 0:
            raise RuntimeError(f"deploy/docker/{script} exited {p.returncode}:\n{p.stderr[-3000:]}")
        took[script] = time.monotonic() - t
    return took


def require():
    """The engine (started if need be) and the base images; skips, or fails under CI."""
    import pytest

    global _engine
    problem = None
    if shutil.which("docker") is None:
        problem = "no docker client: run deploy/install-deps.sh --test"
    else:
        try:
            if _engine is None:
                _engine = Engine()
            if not compose_available():
                problem = "no `docker compose`: run deploy/install-deps.sh --test"
            else:
                _engine.base_took = base_images()
        except RuntimeError as e:
            problem = str(e)
    if problem and required():
        pytest.fail(f"{problem} (Docker is required: CI / WB_REQUIRE_DOCKER=1)")
    if problem:
        pytest.skip(problem)
    return _engine


def project_ps():
    """{service: {...}} of the stack's containers, stopped ones too."""
    out = compose("ps", "-a", "--format", "json").stdout.strip()
    rows = []
    if out.startswith("["):
        rows = json.loads(out)
    else:
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {r["Service"]: r for r in rows}


def container(service):
    return project_ps()[service]["Name"]


def stack_state(ps):
    """(ok, text): every service healthy (or running, with no health check) and
    kafka-init exited 0."""
    lines, ok = [], True
    for name in sorted(ps):
        r = ps[name]
        state, health, code = r.get("State"), r.get("Health", ""), r.get("ExitCode", 0)
        lines.append(f"{name}: {state} {health} exit {code}")
        if name == "kafka-init":
            ok &= state == "exited" and code == 0
        elif health:
            ok &= state == "running" and health == "healthy"
        else:
            ok &= state == "running"
    return ok, ", ".join(lines)


def wait_stack(timeout=240, services=None):
    """Seconds until every service (or those named) is healthy; kafka-init must exit 0."""
    t = time.monotonic()
    text = ""
    while time.monotonic() - t < timeout:
        ps = project_ps()
        if services:
            ps = {k: v for k, v in ps.items() if k in services}
        ok, text = stack_state(ps)
        if ps.get("kafka-init", {}).get("State") == "exited" and ps["kafka-init"].get("ExitCode"):
            break
        if ok and (not services or set(services) <= set(ps)):
            return time.monotonic() - t
        time.sleep(1)
    logs = compose("logs", "--tail", "30", check=False).stdout[-6000:]
    raise AssertionError(f"stack not healthy after {timeout} s: {text}\n{logs}")
