"""deploy/Dockerfile and .dockerignore, checked without a Docker engine.

- the stages and what each carries (runtime: libraries and one binary, a
  numeric non-root user, the ports);
- the build stage runs the README's build (deploy/run-local.sh's cmake lines)
  with install-deps.sh's build packages;
- the runtime packages provide every shared library the binaries name
  (readelf, ldd, dpkg and apt-cache depends on this Debian 12 machine);
- the build context that .dockerignore and the COPY lines leave is enough
  to configure the project, with the Dockerfile's own cmake command."""
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from helpers import (SOURCE_DIR, dockerignore_included, env_path, load_compose, parse_dockerfile,  # noqa: E402
                     parse_ini, read_dockerignore, run)

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


def cmake_lines(text, top_var=None):
    """The cmake commands of a shell text, continuation lines joined, the
    repository root written as '.', -j's argument dropped."""
    text = re.sub(r"\\\n\s*", " ", text)
    out = []
    for part in re.split(r"&&|\n|;", text):
        words = part.strip().split()
        if not words or words[0] != "cmake":
            continue
        line = " ".join(words)
        if top_var:
            line = line.replace(f'"${top_var}"/', "").replace(f'"${top_var}/', "")
            line = re.sub(rf'"?\${top_var}"?', ".", line)
            line = line.replace('"', "")
        line = re.sub(r"-j\S*", "-j", line)
        out.append(line)
    return out


def test_build_commands_are_the_readmes(dockerfile):
    """The build stage runs the commands the README's build runs: those of
    deploy/run-local.sh (the README's first command), plus the install."""
    stages, _, _ = dockerfile
    docker = [l for cmd in instrs(stages["build"], "RUN") for l in cmake_lines(cmd)]
    script = SOURCE_DIR / "deploy" / "run-local.sh"
    if not script.is_file():
        pytest.skip("deploy/run-local.sh not written yet")
    readme = SOURCE_DIR / "README.md"
    if readme.is_file():
        assert "deploy/run-local.sh" in readme.read_text(), "README no longer builds with run-local.sh"
    m = re.search(r'^(\w+)=\$\(cd "\$\(dirname "\$0"\)/\.\." && pwd\)', script.read_text(), re.M)
    local = cmake_lines(script.read_text(), top_var=m.group(1) if m else None)
    assert local, "no cmake line in deploy/run-local.sh"
    assert docker[:len(local)] == local, f"Dockerfile {docker} != run-local.sh {local}"
    rest = docker[len(local):]
    builddir = local[0].split("-B ")[1].split()[0]
    assert rest == [f"cmake --install {builddir} --prefix /usr/local"], rest


def test_build_packages_are_install_deps(dockerfile):
    stages, _, _ = dockerfile
    script = SOURCE_DIR / "deploy" / "install-deps.sh"
    if not script.is_file():
        pytest.skip("deploy/install-deps.sh not written yet")
    m = re.search(r"^build=\(([^)]*)\)", script.read_text(), re.M)
    assert m, "no build=(...) list in install-deps.sh"
    assert sorted(apt_packages(stages["build"])) == sorted(m.group(1).split())


# ---- runtime libraries ----------------------------------------------------------------

def binaries():
    out = []
    bridge = env_path("WB_BRIDGE")
    if bridge:
        out.append(bridge)
    build = os.environ.get("WB_BUILD_DIR")
    if build and (pathlib.Path(build) / "deploy/consumer/webhook-consumer").is_file():
        out.append(pathlib.Path(build) / "deploy/consumer/webhook-consumer")
    return out


def owning_package(lib):
    real = os.path.realpath(lib)
    candidates = {lib, real}
    for p in list(candidates):
        if p.startswith("/usr/"):
            candidates.add(p[4:])
        else:
            candidates.add("/usr" + p)
    for c in candidates:
        res = run(["dpkg", "-S", c])
        if res.returncode == 0:
            return res.stdout.split(":")[0].strip()
    return None


def dependency_closure(packages):
    res = run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
               "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *packages])
    assert res.returncode == 0, res.stderr
    closure = set()
    for line in res.stdout.splitlines():
        if not line.startswith(" "):
            closure.add(line.strip().split(":")[0])
    return closure


def test_runtime_packages_provide_every_library(dockerfile):
    if shutil.which("dpkg") is None or shutil.which("apt-cache") is None:
        pytest.skip("not a Debian machine")
    bins = binaries()
    if not bins:
        pytest.skip("WB_BRIDGE / WB_BUILD_DIR not set: no binary to inspect")
    stages, _, _ = dockerfile
    runtime = apt_packages(stages["runtime"])
    closure = dependency_closure(runtime) | IN_BASE_IMAGE
    for binary in bins:
        # the libraries the binary itself names (NEEDED); what those load in
        # turn, Debian's package dependencies bring
        res = run(["readelf", "-d", str(binary)])
        assert res.returncode == 0, res.stderr
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", res.stdout)
        assert needed
        res = run(["ldd", str(binary)])
        assert res.returncode == 0, res.stderr
        paths = dict(re.findall(r"^\s*(\S+) => (\S+)", res.stdout, re.M))
        for soname in needed:
            if re.match(r"lib(asan|ubsan|lsan|tsan)\.so", soname):
                continue  # the sanitizer build's runtime, not in a Release binary
            assert soname in paths, f"{binary.name}: {soname} not found by ldd"
            pkg = owning_package(paths[soname])
            assert pkg, f"{binary.name}: {paths[soname]} belongs to no package"
            assert pkg in closure, (f"{binary.name} loads {soname} from {pkg}, which the "
                                    f"runtime stage ({' '.join(runtime)}) does not install")


# ---- the build context --------------------------------------------------------------

def tracked_files():
    if not (SOURCE_DIR / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    res = run(["git", "-C", str(SOURCE_DIR), "ls-files", "--cached", "--others",
               "--exclude-standard"])
    assert res.returncode == 0, res.stderr
    return [f for f in res.stdout.splitlines() if (SOURCE_DIR / f).is_file()]


def test_build_context(dockerfile, tmp_path):
    """Copy what the Docker build would see (.dockerignore, then the build
    stage's COPY lines) and run the build stage's configure command on it."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    stages, _, _ = dockerfile
    patterns = read_dockerignore()
    context = [f for f in tracked_files() if dockerignore_included(patterns, f)]
    # nothing big or private goes to the daemon
    for f in context:
        assert not re.match(r"(tests|\.git|build)/", f), f
    ctx = tmp_path / "src"
    copied = 0
    for args in instrs(stages["build"], "COPY"):
        *srcs, dest = args.split()
        for src in srcs:
            src = src.rstrip("/")
            hits = [f for f in context if f == src or f.startswith(src + "/")]
            assert hits, f"COPY {src}: nothing of it is in the build context"
            for f in hits:
                target = ctx / f
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(SOURCE_DIR / f, target)
                copied += 1
    assert copied
    # every file the bridge stage copies from the context is in it too
    for args in instrs(stages["bridge"], "COPY"):
        if not args.startswith("--from="):
            assert args.split()[0] in context, args
    # local includes resolve inside the copied tree
    for c in ctx.rglob("*.c"):
        for inc in re.findall(r'#include "([^"]+)"', c.read_text(errors="replace")):
            assert (c.parent / inc).exists() or (ctx / "bridge" / inc).exists(), f"{c}: {inc}"
    configure = next(l for cmd in instrs(stages["build"], "RUN") for l in cmake_lines(cmd)
                     if l.startswith("cmake -S"))
    res = run(configure.split(), cwd=ctx, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (ctx / "build/release/Makefile").is_file() or (ctx / "build/release/build.ninja").is_file()
    # and the consumer is part of that build
    assert (ctx / "build/release/deploy/consumer").is_dir()


# ---- the checks above catch a broken Dockerfile --------------------------------------

BROKEN = [
    ("missing runtime library", "libssl3 libinih1", "libssl3", test_runtime_packages_provide_every_library),
    ("other cmake options", "-DWB_TESTS=OFF", "-DWB_TESTS=ON", test_build_commands_are_the_readmes),
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
