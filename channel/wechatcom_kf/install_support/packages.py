"""Which third-party packages the channel needs, what a target interpreter has, and what to install.

The needs are derived, not listed: the channel's own imports (read with ``ast``) name the packages and
this repo's ``requirements.txt`` gives each one's minimum. ``decide_packages`` is a pure function;
``probe`` and ``pip_install`` run the target interpreter. Nothing here imports the host.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MIN_PYTHON = (3, 10)  # the channel uses dataclass(slots=True)
HOST_MODULES = frozenset(
    {"app", "bridge", "channel", "common", "config", "lib", "models", "plugins", "voice"}
)
IMPORT_TO_DISTRIBUTION = {"PIL": "pillow", "imageio_ffmpeg": "imageio-ffmpeg", "yaml": "pyyaml"}
# wechatpy decrypts callbacks with its optional "cryptography" backend.
IMPLIED_BY_MODULE = {"wechatpy.crypto": ("cryptography",), "wechatpy.enterprise.crypto": ("cryptography",)}
# Needed only when a setting turns the feature on: reported, never installed.
OPTIONAL = {"redis": "wechatcom_kf_redis_url", "prometheus-client": "wechatcom_kf_metrics_port"}
PROBE_TIMEOUT_SECONDS = 120.0
VENV_PYTHONS = ("venv/bin/python", ".venv/bin/python", "venv/Scripts/python.exe", ".venv/Scripts/python.exe")

_REQUIREMENT_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")
_MINIMUM = re.compile(r"(?:===|==|>=|~=)\s*([0-9][A-Za-z0-9.+!-]*)")
_RELEASE = re.compile(r"^\s*v?(?:\d+!)?(\d+(?:\.\d+)*)(.*)$")
_PRE_RELEASE = re.compile(r"^[-_.]?(a|b|c|rc|alpha|beta|pre|preview|dev)", re.IGNORECASE)
_VALID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_VALID_VERSION = re.compile(r"^[0-9][A-Za-z0-9.!+_-]*$")

PROBE_SCRIPT = """
import json, sys
names = json.loads(sys.argv[1])
out = {"version": list(sys.version_info[:3]), "executable": sys.executable, "packages": {}, "all": {}}
try:
    from importlib import metadata
except ImportError:
    metadata = None
if metadata is not None:
    for name in names:
        found = None
        for spelling in (name, name.replace("-", "_")):
            try:
                found = metadata.version(spelling)
                break
            except Exception:
                pass
        out["packages"][name] = found
    for dist in metadata.distributions():
        try:
            out["all"][dist.metadata["Name"]] = dist.version
        except Exception:
            pass
print(json.dumps(out))
"""


def normalize(name: str) -> str:
    """PEP 503 name: ``Pillow`` and ``imageio_ffmpeg`` become ``pillow`` and ``imageio-ffmpeg``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Requirement:
    name: str  # as requirements.txt spells it
    minimum: str | None  # the version of its ==, >=, ~= or ===; None when it gives none

    @property
    def key(self) -> str:
        return normalize(self.name)

    @property
    def spec(self) -> str:
        """What pip is given: a lower bound, never an exact pin."""
        return f"{self.name}>={self.minimum}" if self.minimum else self.name


@dataclass(frozen=True)
class Needs:
    required: tuple[Requirement, ...]
    optional: tuple[tuple[Requirement, str], ...]  # (requirement, the setting that needs it)
    unlisted: tuple[str, ...] = ()  # imported, but no requirements.txt line (e.g. urllib3, via requests)

    @property
    def names(self) -> list[str]:
        return [req.name for req in self.required] + [req.name for req, _ in self.optional]


@dataclass(frozen=True)
class PackageDecision:
    install: tuple[Requirement, ...]
    satisfied: tuple[tuple[Requirement, str], ...]  # (requirement, installed version)
    too_old: tuple[tuple[Requirement, str], ...]  # installed below the minimum: reported, left alone
    optional: tuple[tuple[Requirement, str | None, str], ...]  # (requirement, installed or None, setting)


@dataclass(frozen=True)
class Probe:
    executable: str
    version: tuple[int, ...]
    packages: dict[str, str | None]  # normalized name -> installed version (None: not installed)
    distributions: dict[str, str] = field(default_factory=dict)  # everything installed, normalized


class ProbeError(Exception):
    """The target interpreter could not be run or gave no usable answer."""


class InstallError(Exception):
    """pip failed."""


def parse_requirements(text: str) -> dict[str, Requirement]:
    """``requirements.txt`` lines by normalized name, in file order (options and URLs skipped)."""
    found: dict[str, Requirement] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line or line.startswith("-") or "://" in line or " @ " in line:
            continue
        match = _REQUIREMENT_LINE.match(line)
        if match is None:
            continue
        minimum = _MINIMUM.search(match.group(2))
        requirement = Requirement(match.group(1), minimum.group(1).rstrip(".") if minimum else None)
        found[requirement.key] = requirement
    return found


def imported_modules(files: Iterable[Path]) -> set[str]:
    """Every absolute module an import in ``files`` names (``from a.b import c`` gives a.b and a.b.c)."""
    names: set[str] = set()
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _distributions_of(module: str) -> set[str]:
    top = module.split(".")[0]
    if top in HOST_MODULES or top in sys.stdlib_module_names:
        return set()
    keys = {normalize(IMPORT_TO_DISTRIBUTION.get(top, top))}
    for prefix, implied in IMPLIED_BY_MODULE.items():
        if module == prefix or module.startswith(prefix + "."):
            keys.update(implied)
    return keys


def third_party_needs(modules: Iterable[str], requirements: Mapping[str, Requirement]) -> Needs:
    """The requirements behind ``modules``, in requirements.txt order; optional ones apart."""
    keys: set[str] = set()
    for module in modules:
        keys |= _distributions_of(module)
    listed = [req for key, req in requirements.items() if key in keys]
    return Needs(
        required=tuple(req for req in listed if req.key not in OPTIONAL),
        optional=tuple((req, OPTIONAL[req.key]) for req in listed if req.key in OPTIONAL),
        unlisted=tuple(sorted(keys - set(requirements))),
    )


def needs_of(files: Iterable[Path], requirements_file: Path) -> Needs:
    """What the modules in ``files`` need, by this repo's requirements.txt."""
    requirements = parse_requirements(requirements_file.read_text(encoding="utf-8"))
    return third_party_needs(imported_modules(files), requirements)


def version_key(text: str) -> tuple[tuple[int, ...], int] | None:
    """Comparable form of a version: (release without trailing zeros, 0 for a pre-release else 1)."""
    match = _RELEASE.match(text)
    if match is None:
        return None
    release = tuple(int(part) for part in match.group(1).split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    return release, 0 if _PRE_RELEASE.match(match.group(2)) else 1


def meets_minimum(installed: str, minimum: str) -> bool | None:
    """True/False, or None when either version cannot be read."""
    have, need = version_key(installed), version_key(minimum)
    if have is None or need is None:
        return None
    return have >= need


def decide_packages(needs: Needs, installed: Mapping[str, str | None]) -> PackageDecision:
    """What to install (missing ones only) and what to report; ``installed`` by normalized name."""
    install: list[Requirement] = []
    satisfied: list[tuple[Requirement, str]] = []
    too_old: list[tuple[Requirement, str]] = []
    for req in needs.required:
        version = installed.get(req.key)
        if version is None:
            install.append(req)
        elif req.minimum and meets_minimum(version, req.minimum) is False:
            too_old.append((req, version))
        else:
            satisfied.append((req, version))
    optional = tuple((req, installed.get(req.key), setting) for req, setting in needs.optional)
    return PackageDecision(tuple(install), tuple(satisfied), tuple(too_old), optional)


def _parse_probe(stdout: str, python: str) -> Probe:
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        data = json.loads(lines[-1])
        version = tuple(int(part) for part in data["version"])
    except (IndexError, ValueError, KeyError, TypeError):
        raise ProbeError(f"{python} did not report its version") from None
    packages = {normalize(name): value for name, value in (data.get("packages") or {}).items()}
    everything = {normalize(name): str(value) for name, value in (data.get("all") or {}).items()}
    return Probe(str(data.get("executable") or python), version, packages, everything)


def probe(python: str, names: Sequence[str], cwd: Path) -> Probe:
    """Run ``python`` once: its version and, by importlib.metadata, the versions of ``names``."""
    try:
        result = subprocess.run(
            [python, "-c", PROBE_SCRIPT, json.dumps(list(names))],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ProbeError(f"cannot run {python}: {exc}") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProbeError(f"{python} failed ({result.returncode}): {last}")
    return _parse_probe(result.stdout, python)


def default_python(cow: Path) -> str:
    """The CoW's own virtualenv interpreter when it has one, else the one running this."""
    return next((str(cow / rel) for rel in VENV_PYTHONS if (cow / rel).is_file()), sys.executable)


def probe_target(python: str, names: Sequence[str], cwd: Path) -> Probe:
    """``probe``, refusing (ProbeError, one line) an interpreter older than MIN_PYTHON."""
    found = probe(python, names, cwd)
    if found.version < MIN_PYTHON:
        shown, need = ".".join(map(str, found.version)), ".".join(map(str, MIN_PYTHON))
        raise ProbeError(
            f"{python} 是 Python {shown}，渠道需要 {need}+ / is Python {shown}; the channel needs Python "
            f"{need} or newer (dataclass slots): pass --python with a newer interpreter"
        )
    return found


def constraints_text(distributions: Mapping[str, str]) -> str:
    """Every installed distribution at its installed version, so pip upgrades or downgrades none."""
    lines = [
        f"{name}=={version}"
        for name, version in sorted(distributions.items())
        if _VALID_NAME.match(name) and _VALID_VERSION.match(version)
    ]
    return "\n".join(lines) + "\n"


def pip_command(python: str, requirements: Sequence[Requirement], constraints: str) -> list[str]:
    specs = [req.spec for req in requirements]
    return [python, "-m", "pip", "install", "--disable-pip-version-check", "-c", constraints, *specs]


def pip_install(
    python: str, requirements: Sequence[Requirement], installed: Mapping[str, str], cwd: Path
) -> None:
    """Install ``requirements`` into ``python``, holding every installed distribution where it is."""
    with tempfile.TemporaryDirectory(prefix="wechatcom-kf-install-") as tmp:
        constraints = Path(tmp) / "installed-versions.txt"
        constraints.write_text(constraints_text(installed), encoding="utf-8")
        try:
            result = subprocess.run(pip_command(python, requirements, str(constraints)), cwd=cwd, check=False)
        except OSError as exc:
            raise InstallError(f"cannot run pip: {exc}") from None
    if result.returncode != 0:
        raise InstallError(f"pip exited with status {result.returncode}")
