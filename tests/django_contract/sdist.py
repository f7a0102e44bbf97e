"""Django's own ``tests/sessions_tests`` package, fetched from PyPI at test time.

Django's session tests are third-party code, so the repository never holds them: the
installed Django's sdist is downloaded with pip (which checks the file against the sha256
the index publishes), only ``tests/sessions_tests/*.py`` is extracted, and the result is
cached in a gitignored folder beside this file together with a manifest (version, the
sdist's sha256, each file's sha256). A cached copy is used only when its manifest names
the installed Django version and every file still has its recorded hash; anything else
is fetched afresh. The files are imported unchanged, as the top-level package
``sessions_tests`` (Django's name for the app, which its ``models.py`` needs).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import django

SUPPORTED = (5, 2)
"""The Django release series the contract suite is written against."""

PACKAGE = "sessions_tests"
FILES = ("__init__.py", "models.py", "no_clear_expired.py", "tests.py")
PINNED_SHA256 = {
    "5.2.19": "ad03d8abc51dbff95ebf34b27123cf0c26a3b62db7ba0cd520783686362533d1",
}
"""sdist hashes checked by hand, where known; pip checks every download against the
index's published sha256 in any case, so a newer 5.2.x release works without an entry."""

CACHE = Path(__file__).resolve().parent / ".fetched"
"""Gitignored: ``.fetched/django-<version>/sessions_tests/`` plus ``manifest.json``."""


class FetchError(RuntimeError):
    """Django's test files could not be obtained or did not verify."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cached(root: Path, version: str) -> bool:
    manifest = root / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        recorded = json.loads(manifest.read_text())
    except ValueError:
        return False
    if recorded.get("version") != version:
        return False
    files: dict[str, str] = recorded.get("files", {})
    return sorted(files) == sorted(FILES) and all(
        (root / PACKAGE / name).is_file() and _sha256(root / PACKAGE / name) == digest
        for name, digest in files.items()
    )


def _download(version: str, into: Path) -> Path:
    """``pip download`` of the sdist alone; pip verifies the index's sha256."""
    command = [
        sys.executable, "-m", "pip", "download", f"django=={version}",
        "--no-binary", ":all:", "--no-deps", "--disable-pip-version-check",
        "--quiet", "--dest", str(into),
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FetchError(f"pip download django=={version} failed: {exc}") from exc
    if result.returncode != 0:
        raise FetchError(
            f"pip download django=={version} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    found = sorted(into.glob(f"[Dd]jango-{version}.tar.gz"))
    if len(found) != 1:
        raise FetchError(f"pip download left no django-{version}.tar.gz in {into}")
    return found[0]


def _extract(sdist: Path, version: str, into: Path) -> None:
    """Only the package's .py files, and the sdist's own word for its version."""
    top = f"django-{version}"
    with tarfile.open(sdist, "r:gz") as archive:
        members = {m.name: m for m in archive.getmembers()}
        info = members.get(f"{top}/PKG-INFO")
        if info is None:
            raise FetchError(f"{sdist.name} has no PKG-INFO")
        reader = archive.extractfile(info)
        assert reader is not None
        headers = reader.read().decode("utf-8", "replace").splitlines()
        if f"Version: {version}" not in headers:
            raise FetchError(f"{sdist.name}'s PKG-INFO does not say Version: {version}")
        (into / PACKAGE).mkdir(parents=True)
        for name in FILES:
            member = members.get(f"{top}/tests/{PACKAGE}/{name}")
            source = archive.extractfile(member) if member is not None else None
            if source is None:
                raise FetchError(f"{sdist.name} has no tests/{PACKAGE}/{name}")
            (into / PACKAGE / name).write_bytes(source.read())


def fetch() -> Path:
    """The folder holding ``sessions_tests/`` for the installed Django (download on miss).

    Safe against concurrent runs: a fresh copy is built in a temporary folder and renamed
    into place, and a loser of that race uses the winner's copy.
    """
    version = django.__version__
    if django.VERSION[:2] != SUPPORTED:
        raise FetchError(
            f"Django {version} is installed; the contract suite runs Django "
            f"{'.'.join(map(str, SUPPORTED))}'s session tests"
        )
    root = CACHE / f"django-{version}"
    if _cached(root, version):
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=".partial-") as scratch:
        work = Path(scratch)
        sdist = _download(version, work / "download")
        built = work / "built"
        digest = _sha256(sdist)
        pinned = PINNED_SHA256.get(version)
        if pinned is not None and digest != pinned:
            raise FetchError(f"{sdist.name} has sha256 {digest}, expected {pinned}")
        _extract(sdist, version, built)
        manifest = {
            "version": version,
            "sdist": sdist.name,
            "sdist_sha256": digest,
            "files": {name: _sha256(built / PACKAGE / name) for name in FILES},
        }
        (built / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
        try:
            os.replace(built, root)
        except OSError:
            if not _cached(root, version):  # not a concurrent run's good copy
                raise
    if not _cached(root, version):
        raise FetchError(f"{root} did not verify after download")
    return root
