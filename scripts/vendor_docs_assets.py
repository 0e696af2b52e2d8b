"""Fetch the Data Docs' front-end files from the npm registry into omnisync/validation/assets/.

Run by ``make docs-assets`` after changing a version in ``omnisync.validation.vendored_assets``.
Each package's tarball is checked against the registry's sha512 integrity, which is kept in
``assets/lock.json`` with every file's sha256; a tarball that no longer matches a kept integrity
is refused. The test suite checks the shipped files against the lock without the network.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import sys
import tarfile

import httpx

from omnisync.validation.vendored_assets import ASSETS, ASSETS_DIR, LOCK, sha256

REGISTRY = "https://registry.npmjs.org"


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def main() -> int:
    old = json.loads(LOCK.read_text()) if LOCK.exists() else {"packages": {}}
    packages: dict[str, dict[str, str]] = {}
    files: dict[str, str] = {}
    staging = ASSETS_DIR.with_name("assets.new")
    shutil.rmtree(staging, ignore_errors=True)
    with httpx.Client(timeout=60, follow_redirects=True) as http:
        for key in sorted({(a.package, a.version) for a in ASSETS}):
            package, version = key
            meta = http.get(f"{REGISTRY}/{package}/{version}").raise_for_status().json()
            tarball, integrity = meta["dist"]["tarball"], meta["dist"]["integrity"]
            data = http.get(tarball).raise_for_status().content
            if _integrity(data) != integrity:
                print(f"{package}@{version}: the tarball does not match the registry's integrity")
                return 1
            pinned = old["packages"].get(f"{package}@{version}", {}).get("integrity")
            if pinned and pinned != integrity:
                print(f"{package}@{version}: integrity changed since it was pinned ({pinned})")
                return 1
            packages[f"{package}@{version}"] = {"tarball": tarball, "integrity": integrity}
            wanted = [a.path for a in ASSETS if (a.package, a.version) == key]
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
                for member in archive.getmembers():
                    if not member.isfile():
                        continue
                    inner = member.name.split("/", 1)[1]  # npm tarballs hold one top folder
                    if not any(
                        inner == w or (w.endswith("/") and inner.startswith(w)) for w in wanted
                    ):
                        continue
                    dest = staging / f"{package}@{version}" / inner
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    extracted = archive.extractfile(member)
                    assert extracted is not None
                    dest.write_bytes(extracted.read())
                    files[dest.relative_to(staging).as_posix()] = sha256(dest)
            print(f"{package}@{version}: {len(wanted)} path(s)")
    missing = [a.local for a in ASSETS if not a.path.endswith("/") and a.local not in files]
    if missing:
        print(f"not in their packages: {missing}")
        return 1
    lock = {"registry": REGISTRY, "packages": packages, "files": dict(sorted(files.items()))}
    (staging / LOCK.name).write_text(json.dumps(lock, indent=2) + "\n")
    shutil.rmtree(ASSETS_DIR, ignore_errors=True)
    staging.rename(ASSETS_DIR)
    print(f"{len(files)} files in {ASSETS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
