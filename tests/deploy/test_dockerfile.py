"""deploy/Dockerfile and .dockerignore: the fast checks that need no Docker
engine (the stages and what each carries, apt hygiene, a numeric non-root
user, the build packages are install-deps.sh's, every package name exists in
Debian 12). That the image builds from its context, that its runtime stage
holds every library the binaries load and that it runs hardened is proven by
building and running it: tests/deploy/test_docker_image.py."""
import json
import pathlib
import re
import shlex
import shutil
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from helpers import SOURCE_DIR, load_compose, parse_dockerfile, parse_ini, run  # noqa: E402

DOCKERFILE = SOURCE_DIR / "deploy" / "Dockerfile"
BASES = ("debian:12-slim", "debian:bookworm-slim")
# what debian:12-slim has before any apt-get install
IN_BASE_IMAGE = {"libc6", "libgcc-s1"}


@pytest.fixture(scope="module")
def dockerfile():
    stages, args = parse_dockerfile(DOCKERFILE.read_text())
    return {name: (base, instrs) for name, base, instrs in stages}, [s[0] for s in stages], args


def instrs(stage, kind):
    return [a for i, a in stage[1] if i == kind]


def apt_packages(stage):
    """Packages named by `apt-get install` in a stage's RUN lines."""
    pkgs = []
    for cmd in instrs(stage, "RUN"):
        for part in re.split(r"&&|;", cmd):
            words = shlex.split(part)
            if "apt-get" in words and "install" in words:
                pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def test_apt_hygiene(dockerfile):
    """Each apt-get install updates its lists in the same layer (no stale
    cache), installs no recommends, and deletes the lists after itself."""
    stages, _, _ = dockerfile
    for name, stage in stages.items():
        for cmd in instrs(stage, "RUN"):
            if "apt-get install" not in cmd:
                continue
            assert "apt-get update" in cmd, name
            assert "--no-install-recommends" in cmd and " -y " in f" {cmd} ", name
            assert "rm -rf /var/lib/apt/lists/*" in cmd, name
            assert "DEBIAN_FRONTEND=noninteractive" in cmd, name


def test_packages_exist_in_debian_12(dockerfile):
    """Every package the Dockerfile installs is one Debian 12 has (this
    machine is Debian 12), so `docker build` does not fail on a name."""
    if shutil.which("apt-cache") is None:
        pytest.skip("apt-cache not installed")
    if not pathlib.Path("/etc/debian_version").read_text().startswith("12"):
        pytest.skip("not Debian 12")
    stages, _, _ = dockerfile
    pkgs = apt_packages(stages["build"]) + apt_packages(stages["runtime"])
    res = run(["apt-cache", "show", "--no-all-versions", *pkgs])
    found = set(re.findall(r"^Package: (\S+)", res.stdout, re.M))
    assert not set(pkgs) - found, f"not in Debian 12: {sorted(set(pkgs) - found)}"


def resolve(base, args):
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), base)


def test_stages(dockerfile):
    stages, order, args = dockerfile
    assert order == ["build", "runtime", "consumer", "bridge"], order
    assert order[-1] == "bridge", "a plain `docker build` must give the bridge"
    for name in ("build", "runtime"):
        assert resolve(stages[name][0], args) in BASES
    assert stages["consumer"][0] == "runtime" and stages["bridge"][0] == "runtime"


def test_runtime_carries_only_runtime(dockerfile):
    stages, _, _ = dockerfile
    runtime = apt_packages(stages["runtime"])
    assert runtime, "no runtime packages installed"
    for p in runtime:
        assert not p.endswith("-dev") and p not in ("build-essential", "cmake", "gcc",
                                                    "pkg-config", "make", "curl", "wget"), p
    # the final stages add one binary (and the bridge its configuration) and nothing else
    for name, binary in (("bridge", "webhook-bridge"), ("consumer", "webhook-consumer")):
        stage = stages[name]
        assert not instrs(stage, "RUN"), f"{name}: RUN in a runtime stage"
        froms = [a for a in instrs(stage, "COPY") if a.startswith("--from=")]
        assert froms == [f"--from=build /usr/local/bin/{binary} /usr/local/bin/{binary}"]
        entry = json.loads(instrs(stage, "ENTRYPOINT")[-1])
        assert entry == [f"/usr/local/bin/{binary}"], "exec form, so that SIGTERM reaches it"


def test_runtime_has_the_system_cas(dockerfile):
    """The image's configuration has Shoperti's API confirm its events over
    https (auth = api-lookup, certificates verified against the system's CAs
    unless auth.ca_file is set): the runtime stage installs those CAs."""
    stages, _, _ = dockerfile
    ini = parse_ini((SOURCE_DIR / "deploy/bridge.example.ini").read_text())
    lookups = [kv for s, kv in ini.items()
               if s.startswith("provider.") and kv.get("auth") == "api-lookup"]
    assert lookups and all(kv["auth.url"].startswith("https://") for kv in lookups)
    if any("auth.ca_file" not in kv for kv in lookups):
        assert "ca-certificates" in apt_packages(stages["runtime"])


def effective_user(stages, name):
    while True:
        base, ins = stages[name]
        users = instrs((base, ins), "USER")
        if users:
            return users[-1]
        assert base in stages, f"{name}: no USER"
        name = base


def test_non_root_numeric_user(dockerfile):
    stages, _, _ = dockerfile
    for name in ("bridge", "consumer"):
        user = effective_user(stages, name)
        uid, _, gid = user.partition(":")
        # numeric, so that Kubernetes' runAsNonRoot can verify it
        assert uid.isdigit() and int(uid) != 0, user
        assert gid == "" or (gid.isdigit() and int(gid) != 0), user


def test_bridge_stage(dockerfile):
    stages, _, _ = dockerfile
    bridge = stages["bridge"]
    assert sorted(" ".join(instrs(bridge, "EXPOSE")).split()) == ["8080", "9090"]
    copies = [a.split() for a in instrs(bridge, "COPY") if not a.startswith("--from=")]
    assert copies == [["deploy/bridge.example.ini", "/etc/webhook-bridge/bridge.ini"]]
    assert (SOURCE_DIR / copies[0][0]).is_file() or not (SOURCE_DIR / "deploy").is_dir()
    env = dict(a.split("=", 1) for a in instrs(bridge, "ENV"))
    assert env["BRIDGE_CONFIG"] == copies[0][1]
    assert not instrs(bridge, "VOLUME"), "a VOLUME would need a writable filesystem"


SPOOL_DIR = "/var/lib/webhook-bridge/spool"


def test_spool_directory_owned_by_the_user(dockerfile):
    """The spool's mount point exists in the image, owned by the image's
    user: a new named volume (compose) takes its owner from it, and the
    bridge, running as that user on a read-only root, can write there."""
    stages, _, _ = dockerfile
    runs = " ".join(instrs(stages["runtime"], "RUN"))
    m = re.search(r"install -d -o (\d+) -g (\d+) -m (\d+) ([^&]*)", runs)
    assert m, "the runtime stage does not make the spool directory"
    assert SPOOL_DIR in m.group(4).split()
    user = effective_user(stages, "bridge")
    assert f"{m.group(1)}:{m.group(2)}" == user
    assert int(m.group(3), 8) & 0o700 == 0o700 and int(m.group(3), 8) & 0o007 == 0
    compose = load_compose()
    svc = compose["services"]["bridge"]
    assert svc["user"] == user


def test_build_packages_are_install_deps(dockerfile):
    stages, _, _ = dockerfile
    script = SOURCE_DIR / "deploy" / "install-deps.sh"
    if not script.is_file():
        pytest.skip("deploy/install-deps.sh not written yet")
    m = re.search(r"^build=\(([^)]*)\)", script.read_text(), re.M)
    assert m, "no build=(...) list in install-deps.sh"
    assert sorted(apt_packages(stages["build"])) == sorted(m.group(1).split())


# ---- the checks above catch a broken Dockerfile --------------------------------------

BROKEN = [
    ("root user", "USER 10001:10001\n\n# ---- the example", "USER root\n\n# ---- the example",
     test_non_root_numeric_user),
    ("headers in the runtime image", "libssl3 libinih1", "libssl-dev libinih1",
     test_runtime_carries_only_runtime),
    ("shell-form entrypoint", 'ENTRYPOINT ["/usr/local/bin/webhook-bridge"]',
     "ENTRYPOINT /usr/local/bin/webhook-bridge", test_runtime_carries_only_runtime),
    ("admin port not exposed", "EXPOSE 8080 9090", "EXPOSE 8080", test_bridge_stage),
    ("package name not in Debian 12", "libh2o-evloop0.13", "libh2o-evloop0.14",
     test_packages_exist_in_debian_12),
    ("apt lists left in the image", " \\\n && rm -rf /var/lib/apt/lists/* \\\n && groupadd",
     " \\\n && groupadd", test_apt_hygiene),
]


@pytest.mark.parametrize("what,old,new,check", BROKEN, ids=[b[0] for b in BROKEN])
def test_checks_catch_broken_dockerfile(what, old, new, check):
    text = DOCKERFILE.read_text()
    assert old in text, f"{what}: the Dockerfile changed, update this test"
    stages, args = parse_dockerfile(text.replace(old, new, 1))
    broken = ({n: (b, i) for n, b, i in stages}, [s[0] for s in stages], args)
    try:
        check(broken)
    except AssertionError:
        return
    except pytest.skip.Exception:
        pytest.skip(f"{check.__name__} skips here")
    except (ValueError, json.JSONDecodeError):
        return
    pytest.fail(f"{what}: {check.__name__} accepted it")
