"""Data Docs that open with the network off.

GX's page templates load Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega from public
CDNs; offline, the index is blank and the pages unstyled. The same files, from the npm registry
at pinned versions, ship in ``assets/`` (``vendored_assets``). The site builder renders with the
views below, which point each CDN address at ``static/vendor/`` in the site, where
``vendored_assets.install_assets`` copies the files.

The views wrap GX's own templates rather than copying them, so a GX upgrade keeps its pages; a
CDN address that ``vendored_assets.ASSETS`` does not know fails
``tests/validation/test_data_docs.py``.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from great_expectations.render.view.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import BaseLoader, Environment, FileSystemBytecodeCache
from jinja2.bccache import Bucket

from omnisync.validation.vendored_assets import VENDOR, local_addresses

log = logging.getLogger("omnisync.validation")

#: the renderers that show outcomes by severity and hide validation's own columns
PAGES = "omnisync.validation.pages"


# Subresource integrity pins the CDN's copy; a local file is checked by lock.json instead, and
# Chromium refuses crossorigin fetches of file:// pages.
_SRI = re.compile(r'\s+integrity="[^"]*"|\s+crossorigin="[^"]*"')
_CDN_URL = re.compile(
    r"https?://(?:unpkg\.com|cdn\.jsdelivr\.net|cdnjs\.cloudflare\.com|"
    r"maxcdn\.bootstrapcdn\.com|stackpath\.bootstrapcdn\.com|code\.jquery\.com)"
    r"/[^\"'\s)]+"
)


def cdn_addresses(source: str) -> list[str]:
    """Every CDN address in a template's source."""
    return _CDN_URL.findall(source)


_GX_WEB_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
# GX's logo comes from its web-assets bucket; the same images ship in GX's static/images/,
# which the site builder copies next to static/vendor/.
_REWRITES: tuple[tuple[str, str], ...] = (
    (f'"{_GX_WEB_ASSETS}"', 'omnisync_vendor ~ "../images/"'),
    (f"{_GX_WEB_ASSETS}full_logo_dark.png", "{{ omnisync_vendor }}../images/logo-long.png"),
)


class _LocalAssetsLoader(BaseLoader):
    """GX's templates, with each CDN address replaced by the vendored file's relative path."""

    def __init__(self, inner: BaseLoader) -> None:
        self._inner = inner
        self._rewrites = (
            *((url, "{{ omnisync_vendor }}" + local) for url, local in local_addresses().items()),
            *_REWRITES,
        )

    def get_source(self, environment: Environment, template: str) -> tuple[str, Any, Any]:
        source, filename, uptodate = self._inner.get_source(environment, template)
        if "://" in source:
            for url, local in self._rewrites:
                source = source.replace(url, local)
            if "omnisync_vendor" in source:
                source = "\n".join(
                    _SRI.sub("", line) if "omnisync_vendor" in line else line
                    for line in source.split("\n")
                )
        return source, filename, uptodate


def _vendor_prefix(document: Any) -> str:
    """The relative path from a page to ``static/vendor/``, by the page's depth in the site
    (the depths GX's own navigation bar assumes: a dot in a suite's name is one more folder)."""
    if isinstance(document, dict):
        kind, suite = document.get("renderer_type"), document.get("expectation_suite_name")
    else:
        kind = getattr(document, "renderer_type", None)
        suite = getattr(document, "expectation_suite_name", None)
    kind, dots = str(kind or ""), str(suite or "").count(".")
    if "ValidationResults" in kind or "ProfilingResults" in kind:
        return (dots + 4) * "../" + f"{VENDOR}/"
    if "ExpectationSuite" in kind:
        return (dots + 1) * "../" + f"{VENDOR}/"
    return f"./{VENDOR}/"


class CompiledTemplates(FileSystemBytecodeCache):
    """Jinja's compiled templates, kept in its per-user cache directory between runs. Only a
    speed-up: a cache that cannot be written is passed over, never a reason for docs to fail."""

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError as exc:
            log.debug("compiled template not cached: %s", exc)


@functools.cache
def _bytecode_cache() -> CompiledTemplates | None:
    try:
        return CompiledTemplates()
    except (OSError, RuntimeError) as exc:  # no safe per-user directory: compile every time
        log.debug("no cache for compiled templates: %s", exc)
        return None


class _Offline:
    """Mixed in before a GX view: its templates load the site's own files (the index's
    document has no suite, so it gets the site's root)."""

    env: Environment

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert self.env.loader is not None
        self.env.loader = _LocalAssetsLoader(self.env.loader)
        # GX makes a Jinja environment per view, so every run would compile its templates
        # again, a noticeable part of each run's CPU. Compiled templates are kept in Jinja's
        # per-user cache directory, keyed by the (rewritten) source's checksum.
        self.env.bytecode_cache = _bytecode_cache()

    def render(self, document: Any, template: Any = None, **kwargs: Any) -> Any:
        return super().render(  # type: ignore[misc]
            document, template, omnisync_vendor=_vendor_prefix(document), **kwargs
        )


class OfflinePageView(_Offline, DefaultJinjaPageView):
    """A validation or suite page whose scripts and styles come from the site itself."""


class OfflineIndexPageView(_Offline, DefaultJinjaIndexPageView):
    """The site's index, with its scripts and styles from the site itself."""


def site_config(base_directory: str) -> Any:
    """A GX ``SiteBuilder`` configuration that renders with the offline views."""
    module = __name__
    view = {"module_name": module, "class_name": "OfflinePageView"}
    return {
        "class_name": "SiteBuilder",
        # the buttons link to GX's online guides, which an offline reader cannot open
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": base_directory,
        },
        "site_index_builder": {
            "class_name": "DefaultSiteIndexBuilder",
            "view": {"module_name": module, "class_name": "OfflineIndexPageView"},
            "renderer": {"module_name": PAGES, "class_name": "PeopleIndexPage"},
        },
        # merged into GX's defaults: the views change, and the validation pages' renderer
        "site_section_builders": {
            "expectations": {"view": view},
            "validations": {
                "view": view,
                "renderer": {"module_name": PAGES, "class_name": "PeopleValidationPage"},
            },
            "profiling": {"view": view},
        },
    }
