"""Shared helpers for the deployment tests (tests/deploy/), imported by them.

ctest runs each test_*.py here with WB_SOURCE_DIR (repository root),
WB_BUILD_DIR, WB_BRIDGE (webhook-bridge binary) and WB_STANDIN (the Kafka
stand-in) set; run by hand, the defaults below find the repository from this
file and leave the binaries unset (their tests then skip with a reason)."""
import os
import pathlib
import shutil
import re
import subprocess

import pytest

SOURCE_DIR = pathlib.Path(os.environ.get("WB_SOURCE_DIR") or pathlib.Path(__file__).resolve().parents[2])
TESTS_DIR = SOURCE_DIR / "tests"
NODE_MODULES = TESTS_DIR / "node_modules"


def env_path(name):
    """The executable an environment variable names, or None."""
    value = os.environ.get(name)
    if value and os.path.isfile(value) and os.access(value, os.X_OK):
        return pathlib.Path(value)
    return None


def require_node_module(name):
    """Skips unless tests/node_modules has NAME (`cd tests && npm ci`)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_MODULES / name).is_dir():
        pytest.skip(f"tests/node_modules/{name} missing: run `cd tests && npm ci`")


def run(cmd, **kw):
    """subprocess.run with text output captured and a time limit."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(cmd, **kw)


def load_yaml_docs(text):
    import yaml

    return [d for d in yaml.safe_load_all(text) if d is not None]



# ---- what the bridge reads ------------------------------------------------

BRIDGE_PREFIXES = ("BRIDGE_RDKAFKA_", "BRIDGE_PROVIDER_")


def bridge_env_names():
    """(exact names, prefixes) of the environment variables the bridge reads,
    from the string literals in bridge/*.c: every "BRIDGE_..." literal; those
    ending in '_' are prefixes (BRIDGE_RDKAFKA_<PROPERTY>, BRIDGE_PROVIDER_<NAME>_<KEY>)."""
    names, prefixes = set(), set()
    for src in sorted((SOURCE_DIR / "bridge").glob("*.c")):
        for lit in re.findall(r'"(BRIDGE_[A-Z0-9_]*)"', src.read_text(errors="replace")):
            if lit.endswith("_"):
                # "BRIDGE_" alone is the filter for the bridge's own names, not a setting
                if re.fullmatch(r"BRIDGE_[A-Z0-9]+_", lit):
                    prefixes.add(lit)
            else:
                names.add(lit)
    return names, prefixes


def parse_ini(text):
    """{section: {key: value}} as inih reads it: '#' and ';' start comment
    lines, ';' after whitespace starts an inline comment, keys keep their case,
    a later key wins."""
    sections, current = {}, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = line[1:line.index("]")].strip()
            sections.setdefault(current, {})
            continue
        m = re.search(r"\s;", line)
        if m:
            line = line[:m.start()]
        key, sep, value = line.partition("=")
        if not sep:
            key, sep, value = line.partition(":")
        sections.setdefault(current, {})[key.strip()] = value.strip()
    return sections


def secret_env_names(ini_sections, env):
    """Names of the variables that the configuration's auth.secret_env keys
    (and auth.secret_env_N) name, after BRIDGE_PROVIDER_<NAME>_AUTH_SECRET_ENV
    overrides from env."""
    out = set()
    providers = {s.split(".", 1)[1] for s in ini_sections if s and s.startswith("provider.")}
    providers |= {"piriod", "shoperti", "bonifiq"}
    for name in providers:
        keys = dict(ini_sections.get(f"provider.{name}", {}))
        prefix = f"BRIDGE_PROVIDER_{name.upper()}_"
        for var, value in env.items():
            if var.startswith(prefix):
                key = var[len(prefix):].lower()
                if key.startswith("auth_"):
                    key = "auth." + key[5:]
                keys[key] = value
        for key, value in keys.items():
            if re.fullmatch(r"auth\.secret_env(_[2-8])?", key) and value:
                out.add(value)
    return out


def unread_bridge_vars(env_names, ini_sections, env):
    """The names in env_names that the bridge never reads."""
    exact, prefixes = bridge_env_names()
    assert "BRIDGE_LISTEN" in exact and "BRIDGE_KAFKA_BROKERS" in exact, \
        "no BRIDGE_* names found in bridge/*.c: has the configuration code moved?"
    secrets = secret_env_names(ini_sections, env)
    return sorted(n for n in env_names
                  if n not in exact and n not in secrets and not n.startswith(tuple(prefixes)))


# ---- the Dockerfile ----------------------------------------------------------

def parse_dockerfile(text):
    """[(stage name or index, base, [(INSTRUCTION, args)])], continuation lines
    joined and comments dropped; plus the global ARGs as a dict."""
    logical, buf = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") and not buf:
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        if buf.strip():
            logical.append(buf.strip())
        buf = ""
    args, stages = {}, []
    for line in logical:
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        rest = rest.strip()
        if instr == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            stages.append((m.group(2) or str(len(stages)), m.group(1), []))
        elif not stages and instr == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        elif stages:
            stages[-1][2].append((instr, rest))
    return stages, args


def dockerignore_included(patterns, path):
    """Whether the build context keeps PATH (relative, '/'-separated) under
    .dockerignore PATTERNS: Go filepath.Match patterns plus '**', matched
    against the path and each of its parent directories, the last matching
    pattern deciding, '!' re-including."""
    def rx(p):
        out, i = "", 0
        while i < len(p):
            if p.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif p.startswith("**", i):
                out, i = out + ".*", i + 2
            elif p[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif p[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(p[i]), i + 1
        return re.compile(out + r"\Z")

    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    included = True
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = os.path.normpath(p.strip()).lstrip("/")
        r = rx(p)
        if any(r.match(c) for c in candidates):
            included = neg
    return included


def read_dockerignore():
    path = SOURCE_DIR / ".dockerignore"
    return [l.strip() for l in path.read_text().splitlines()
            if l.strip() and not l.strip().startswith("#")]


# ---- Compose and Kubernetes -----------------------------------------------

def load_compose():
    import yaml

    return yaml.safe_load((SOURCE_DIR / "docker-compose.yml").read_text())


def compose_bind_mounts(svc):
    """{container path: host path} of a compose service's bind mounts
    (short syntax SOURCE:TARGET[:MODE] whose source is a path; named volumes
    are left out), host paths resolved from the repository root."""
    out = {}
    for v in svc.get("volumes", []):
        source, target = v.split(":")[:2]
        if source.startswith((".", "/", "~")):
            out[target] = (SOURCE_DIR / source).resolve()
    return out


def compose_bridge_config(compose):
    """The configuration file the compose stack's bridge reads: the host file
    mounted over the image's BRIDGE_CONFIG, else the image's own copy (the
    bridge stage's COPY of deploy/bridge.example.ini)."""
    stages, _ = parse_dockerfile((SOURCE_DIR / "deploy/Dockerfile").read_text())
    bridge = next(s for s in stages if s[0] == "bridge")
    image_env = dict(a.split("=", 1) for i, a in bridge[2] if i == "ENV")
    path = image_env["BRIDGE_CONFIG"]
    mounted = compose_bind_mounts(compose["services"]["bridge"]).get(path)
    if mounted is not None:
        return mounted
    copies = [a.split() for i, a in bridge[2] if i == "COPY" and not a.startswith("--from=")]
    return SOURCE_DIR / next(src for src, dst in copies if dst == path)


def env_dict(environment):
    """A service's environment (dict or KEY=VALUE list) as a dict of strings."""
    if environment is None:
        return {}
    if isinstance(environment, list):
        return dict(e.split("=", 1) if "=" in e else (e, "") for e in environment)
    return {k: "" if v is None else str(v) for k, v in environment.items()}


def kustomize_cmd():
    """The command that builds a kustomization: WB_KUSTOMIZE (a kustomize
    binary), else `kubectl kustomize`, else `kustomize build` from PATH or
    from .cache/bin (where `GOBIN=.cache/bin go install
    sigs.k8s.io/kustomize/kustomize/v5@v5.5.0` puts it); None when there is
    none of them."""
    if os.environ.get("WB_KUSTOMIZE"):
        return [os.environ["WB_KUSTOMIZE"], "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    cached = SOURCE_DIR / ".cache" / "bin" / "kustomize"
    if cached.is_file():
        return [str(cached), "build"]
    return None


def kustomize_build(directory):
    cmd = kustomize_cmd()
    if cmd is None:
        pytest.skip("neither kubectl nor kustomize is installed")
    res = run(cmd + [str(directory)])
    return res


def sanitizer_env():
    """Options for a sanitizer build of the bridge, as the integration tests
    use them: leaks reported (exit 86) except libh2o's own caches
    (tests/lsan.supp). No effect on a Release binary."""
    return {
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86",
        "LSAN_OPTIONS": "suppressions=" + str(SOURCE_DIR / "tests" / "lsan.supp"),
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    }
