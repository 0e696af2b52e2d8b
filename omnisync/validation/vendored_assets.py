"""The files Data Docs need offline: each npm package file GX's templates load from a CDN, at a
pinned version, shipped in ``assets/`` with its sha256 in ``assets/lock.json`` (refreshed by
``make docs-assets``), and copied into a site's ``static/vendor/``."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
LOCK = ASSETS_DIR / "lock.json"
VENDOR = "static/vendor"


@dataclass(frozen=True)
class Asset:
    """One file of an npm package, and the CDN addresses GX's templates load it from."""

    package: str
    version: str
    path: str  # inside the package; a trailing "/" takes the whole folder
    cdn: tuple[str, ...] = ()

    @property
    def local(self) -> str:
        return f"{self.package}@{self.version}/{self.path}"


_BT = "bootstrap-table"
# bootstrap-table's filter-control CSS is asked for at 1.19.0 and its scripts at 1.19.1; one
# release (1.19.1) serves both, so the styles match the scripts that use them.
ASSETS: tuple[Asset, ...] = (
    Asset(
        "jquery", "3.7.1", "dist/jquery.min.js", ("https://code.jquery.com/jquery-3.7.1.min.js",)
    ),
    Asset(
        "popper.js",
        "1.12.9",
        "dist/umd/popper.min.js",
        ("https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js",),
    ),
    Asset(
        "bootstrap",
        "4.3.1",
        "dist/css/bootstrap.min.css",
        ("https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css",),
    ),
    Asset(
        "bootstrap",
        "4.3.1",
        "dist/js/bootstrap.min.js",
        ("https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js",),
    ),
    Asset(
        _BT,
        "1.19.1",
        "dist/bootstrap-table.min.css",
        ("https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css",),
    ),
    Asset(
        _BT,
        "1.19.1",
        "dist/bootstrap-table.min.js",
        ("https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js",),
    ),
    Asset(
        _BT,
        "1.19.1",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
        (
            "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
            "bootstrap-table-filter-control.min.js",
        ),
    ),
    Asset(
        _BT,
        "1.19.1",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
        (
            "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
            "bootstrap-table-filter-control.min.css",
            "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
            "bootstrap-table-filter-control.css",
        ),
    ),
    Asset(
        "bootstrap-datepicker",
        "1.9.0",
        "dist/css/bootstrap-datepicker.min.css",
        (
            "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
            "bootstrap-datepicker.min.css",
        ),
    ),
    Asset(
        "bootstrap-datepicker",
        "1.9.0",
        "dist/js/bootstrap-datepicker.min.js",
        (
            "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
            "bootstrap-datepicker.min.js",
        ),
    ),
    Asset(
        "@forevolve/bootstrap-dark",
        "1.1.0",
        "dist/css/bootstrap-prefers-dark.css",
        (
            "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css",
        ),
    ),
    Asset(
        "@fortawesome/fontawesome-free",
        "6.6.0",
        "css/all.min.css",
        ("https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css",),
    ),
    # all.min.css loads its icon fonts from ../webfonts/
    Asset("@fortawesome/fontawesome-free", "6.6.0", "webfonts/"),
    # GX asks for the newest 5.x / 6.x; these are pinned to the newest on the day of the refresh.
    Asset("vega", "5.33.1", "build/vega.min.js", ("https://cdn.jsdelivr.net/npm/vega@5",)),
    Asset(
        "vega-lite",
        "5.23.0",
        "build/vega-lite.min.js",
        ("https://cdn.jsdelivr.net/npm/vega-lite@5",),
    ),
    Asset(
        "vega-embed",
        "6.29.0",
        "build/vega-embed.min.js",
        ("https://cdn.jsdelivr.net/npm/vega-embed@6",),
    ),
)


def local_addresses() -> dict[str, str]:
    """CDN address -> the file's path under the site's ``static/vendor/``."""
    return {url: asset.local for asset in ASSETS for url in asset.cdn}


def read_lock() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(LOCK.read_text(encoding="utf-8"))
    return data


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install_assets(site: Path) -> None:
    """Copy the vendored files into ``<site>/static/vendor/`` (once per content: a file already
    there with the same size is kept)."""
    target = site / VENDOR
    for name in read_lock()["files"]:
        source = ASSETS_DIR / name
        dest = target / name
        if dest.exists() and dest.stat().st_size == source.stat().st_size:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
