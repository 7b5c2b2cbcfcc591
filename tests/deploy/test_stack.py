"""The compose stack's bridge and consumer, run as their containers would run
them, without Docker.

Each program runs with the image's numeric user (deploy/Dockerfile's USER),
with every filesystem read-only, /tmp included (a private mount namespace;
stricter than the containers, which get `read_only: true` plus a tmpfs /tmp
in compose, readOnlyRootFilesystem plus an emptyDir /tmp in Kubernetes),
with the configuration file compose mounts over the image's
and the environment docker-compose.yml gives it; only the broker list points
at the Kafka stand-in instead of the three Kafka containers. Then one webhook
per provider, authenticated as the compose secrets say (Piriod and Shoperti:
a path token, BonifiQ: a header), must be answered 200 and show up in the
consumer's output with the receipt's topic, partition, offset and id."""
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from helpers import (SOURCE_DIR, compose_bridge_config, env_dict, env_path, load_compose,  # noqa: E402
                     parse_dockerfile, run, sanitizer_env)

SANDBOX = r'''
for m in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
  case "$m" in /proc*|/sys*|/dev*) ;; *) mount -o remount,bind,ro "$m" 2>/dev/null || true ;; esac
done
if touch "$(dirname "$1")/.rw-probe" 2>/dev/null || touch /.rw-probe 2>/dev/null; then
  echo "sandbox: the root filesystem is still writable" >&2; exit 97
fi
# the one writable volume (the bridge's spool), as compose mounts it
if [ -n "$VOLUME_" ]; then
  mount --bind "$VOLUME_" "$VOLUME_" && mount -o remount,bind,rw "$VOLUME_" "$VOLUME_" || exit 98
fi
exec setpriv --reuid="$UID_" --regid="$GID_" --clear-groups --no-new-privs -- "$@"
'''


def image_user():
    stages, _ = parse_dockerfile((SOURCE_DIR / "deploy/Dockerfile").read_text())
    runtime = next(s for s in stages if s[0] == "runtime")
    uid, _, gid = [a for i, a in runtime[2] if i == "USER"][-1].partition(":")
    return uid, gid or uid


def sandbox_available():
    if os.geteuid() != 0:
        return False
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                         capture_output=True)
    return res.returncode == 0


def sandboxed(argv, env, volume=None):
    """argv read-only everywhere, as the image's user; volume (a directory)
    the one writable path, as a container's volume is."""
    uid, gid = image_user()
    if volume is not None:
        os.chown(volume, int(uid), int(gid))
    return (["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", SANDBOX, "sh",
             *argv], {**env, "UID_": uid, "GID_": gid, "VOLUME_": str(volume or "")})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def programs():
    bridge, standin = env_path("WB_BRIDGE"), env_path("WB_STANDIN")
    build = os.environ.get("WB_BUILD_DIR")
    consumer = pathlib.Path(build) / "deploy/consumer/webhook-consumer" if build else None
    if not (bridge and standin and consumer and consumer.is_file()):
        pytest.skip("needs WB_BRIDGE, WB_STANDIN and WB_BUILD_DIR (run through ctest)")
    if not sandbox_available():
        pytest.skip("needs root and mount namespaces (unshare) for the read-only root")
    return bridge, consumer, standin


@pytest.fixture(scope="module")
def bootstrap(programs):
    proc = subprocess.Popen([str(programs[2])], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("BOOTSTRAP "), line
        yield line.split(None, 1)[1].strip()
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post(url, body, headers):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def fixture(rel, fallback):
    path = SOURCE_DIR / "tests" / "fixtures" / rel
    return path.read_bytes() if path.is_file() else fallback


def test_compose_services_as_containers(programs, bootstrap, tmp_path):
    bridge, consumer, _ = programs
    compose = load_compose()
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", **sanitizer_env()}

    # the bridge: the image's ENV (BRIDGE_CONFIG) and the compose environment
    stages, _ = parse_dockerfile((SOURCE_DIR / "deploy/Dockerfile").read_text())
    bridge_stage = next(s for s in stages if s[0] == "bridge")
    image_env = dict(a.split("=", 1) for i, a in bridge_stage[2] if i == "ENV")
    assert image_env["BRIDGE_CONFIG"] == "/etc/webhook-bridge/bridge.ini"
    env = env_dict(compose["services"]["bridge"]["environment"])
    web, admin = free_port(), free_port()
    env.update(BRIDGE_CONFIG=str(compose_bridge_config(compose)),  # mounted over the image's
               BRIDGE_KAFKA_BROKERS=bootstrap,
               BRIDGE_LISTEN=f"127.0.0.1:{web}", BRIDGE_ADMIN_LISTEN=f"127.0.0.1:{admin}")
    # compose's bridge-spool volume at BRIDGE_SPOOL_DIR: here a directory of the test
    assert env["BRIDGE_SPOOL_DIR"]
    # (under /tmp itself: the image's user cannot enter pytest's tmp_path)
    spool = pathlib.Path(tempfile.mkdtemp(prefix="wb-stack-spool-"))
    env["BRIDGE_SPOOL_DIR"] = str(spool)
    argv, full_env = sandboxed([str(bridge)], {**base, **env}, volume=spool)
    log = open(tmp_path / "bridge.log", "w+")
    proc = subprocess.Popen(argv, env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd="/")
    receipts = {}
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, open(tmp_path / "bridge.log").read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                pass
            assert time.monotonic() < deadline, "never ready\n" + open(tmp_path / "bridge.log").read()
            time.sleep(0.3)

        # the spool is open on its volume, written by the image's user
        assert (spool / "spool.db").stat().st_uid == int(image_user()[0])
        url = f"http://127.0.0.1:{web}/webhooks"
        # Piriod: the secret path segment
        body = fixture("piriod/payment-created.json",
                       b'{"event":"payment.created","object_id":"pay_stack_1"}')
        status, receipts["piriod"] = post(f"{url}/piriod/{env['PIRIOD_PATH_TOKEN']}", body, {})
        assert status == 200, receipts["piriod"]
        # Shoperti (signs nothing): the secret path segment as well
        body = fixture("shoperti/order-created.json",
                       b'{"topic":"orders/created","id":"evt_stack_1","data":{"id":42}}')
        status, receipts["shoperti"] = post(f"{url}/shoperti/{env['SHOPERTI_PATH_TOKEN']}",
                                            body, {})
        assert status == 200, receipts["shoperti"]
        # without the token, or with another: refused
        for path in ("shoperti", "shoperti/" + "x" * len(env["SHOPERTI_PATH_TOKEN"])):
            status, answer = post(f"{url}/{path}", body, {})
            assert status == 401, (path, status, answer)
        # BonifiQ: the static header
        body = fixture("bonifiq/point-add.json", None)
        assert body is not None, "tests/fixtures/bonifiq/point-add.json missing"
        status, receipts["bonifiq"] = post(f"{url}/bonifiq", body,
                                           {"X-Bonifiq-Token": env["BONIFIQ_TOKEN"]})
        assert status == 200, receipts["bonifiq"]
        # and without the secret: refused
        status, _ = post(f"{url}/bonifiq", body, {})
        assert status == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(spool, ignore_errors=True)
    log.seek(0)
    output = log.read()
    assert proc.returncode == 0, output
    assert "read-only" not in output.lower(), output

    # the consumer, as its container runs it
    cenv = env_dict(compose["services"]["consumer"]["environment"])
    cenv["WEBHOOK_CONSUMER_BROKERS"] = bootstrap
    command = compose["services"]["consumer"].get("command", [])
    argv, full_env = sandboxed([str(consumer), *command, "--idle-exit-ms", "3000",
                                "-X", "session.timeout.ms=6000"], {**base, **cenv})
    res = run(argv, env=full_env, cwd="/", timeout=90)
    assert res.returncode == 0, res.stderr
    assert f"group {cenv['WEBHOOK_CONSUMER_GROUP']}" in res.stderr
    printed = res.stdout
    for provider, r in receipts.items():
        line = (f"event topic={r['topic']} partition={r['partition']} offset={r['offset']} ")
        found = [l for l in printed.splitlines() if l.startswith(line)]
        assert found, f"{provider}: {line!r} not printed\n{printed}"
        assert re.search(rf"\bid={re.escape(r['id'])}\b|\bid=\"{re.escape(r['id'])}\"", found[0])
        assert f"type={r['type']}" in found[0]
        assert 'contenttype="application/cloudevents+json; charset=utf-8"' in found[0]
    # --print-data (the compose command): each CloudEvent follows its line
    events = [json.loads(l) for l in printed.splitlines() if l.startswith("{")]
    assert {e["id"] for e in events} >= {r["id"] for r in receipts.values()}
    assert all(e["specversion"] == "1.0" for e in events)
