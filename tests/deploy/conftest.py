from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.deploy import podman


@dataclass(frozen=True)
class Image:
    name: str
    build_s: float
    size_mb: float


@pytest.fixture(scope="session")
def relay_image() -> Image:
    """The repository's Dockerfile built once per run (with the `local` extra), on a Debian
    bookworm base made with debootstrap."""
    name, build_s = podman.relay_image()
    return Image(name, build_s, podman.image_size_mb(name))
