"""Podman on these machines, in one place: the base image, the project's images and its
containers, for the deploy tests (tests/deploy/).

No registry is reachable from these machines, so `debian:bookworm-slim` cannot be pulled: the
base is made the way Debian makes its own, `debootstrap --variant=minbase bookworm` (Debian's
mirror is reachable), imported into podman, and the project's images are built `FROM` it with
`--build-arg BASE=...`. What podman needs here is not in the Dockerfile or the compose file
(a deployment needs none of it) but in `CONTAINERS_CONF` below and `BUILD_ARGS`, each with
why.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from devtools.supervisor import ROOT

#: The stand-in for debian:bookworm-slim, made by `base_image()`.
BASE = "localhost/sqs-relay-test-base:bookworm"
#: The relay's image as the tests build it: with the `local` extra, so that the same image
#: runs the embedded SQS emulator too.
RELAY = "localhost/sqs-push-relay:local"
#: Debian's CA bundle: pip and uv in a build trust only it here (the network re-signs TLS).
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: Each podman call's ceiling; a build downloads from Debian's mirror and PyPI.
BUILD_TIMEOUT_S = 900
DEBOOTSTRAP_MIRROR = "http://deb.debian.org/debian"


def _hard_limit(resource: int, default: int) -> int:
    import resource as r

    hard = r.getrlimit(resource)[1]
    return default if hard == r.RLIM_INFINITY else min(hard, default)


def _containers_conf() -> Path:
    """A containers.conf for every podman (and podman-compose) call of the tests."""
    import resource

    nofile = _hard_limit(resource.RLIMIT_NOFILE, 65536)
    # nproc well below the hard limit: runc sets it for the container's first process, and
    # at the hard limit itself runc's own processes are refused ("error setting rlimit type 6").
    nproc = min(4096, _hard_limit(resource.RLIMIT_NPROC, 4096))
    text = f"""\
[containers]
# podman's default ulimits are above what these machines allow a process: runc then fails
# with "error setting rlimits ... operation not permitted"; stay at or below the hard limits.
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
# Every container on the host's network: test traffic stays on loopback (127.0.0.1).
netns = "host"

[engine]
# crun refuses these machines' hybrid cgroup layout; Debian's runc works.
runtime = "runc"
"""
    path = Path(tempfile.gettempdir()) / "sqs-relay-tests-containers.conf"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def environment() -> dict[str, str]:
    """The environment for podman and podman-compose: ours, with the containers.conf above."""
    return {**os.environ, "CONTAINERS_CONF": str(_containers_conf())}


def podman(*args: str | Path, timeout_s: float = 120, check: bool = True) -> str:
    """Run `podman args...`; its stdout, or an AssertionError quoting what it said."""
    done = subprocess.run(
        ["podman", *map(str, args)],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(map(str, args))} exited with {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


def image_exists(name: str) -> bool:
    return (
        subprocess.run(
            ["podman", "image", "exists", name], env=environment(), timeout=60
        ).returncode
        == 0
    )


def base_image() -> str:
    """`BASE`, made once per machine: Debian bookworm's minimal system from Debian's mirror,
    without apt's caches (as debian:bookworm-slim has none)."""
    if image_exists(BASE):
        return BASE
    with tempfile.TemporaryDirectory(prefix="bookworm-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBOOTSTRAP_MIRROR],
            capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["podman", "import", "--change", 'CMD ["bash"]', "-", BASE],
            stdin=tar.stdout, env=environment(), capture_output=True, text=True,
            timeout=BUILD_TIMEOUT_S,
        )  # fmt: skip
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait(60)
        assert imported.returncode == 0, imported.stderr
    return BASE


def build_args() -> list[str]:
    """What every `podman build` of the tests adds: the base, and the CA bundle as a secret
    (the Dockerfile mounts it for pip and uv only; nothing of it stays in the image)."""
    # podman's own OCI format has no HEALTHCHECK (it drops it with a warning); Docker's keeps
    # it, as `docker build` does.
    args = ["--format", "docker", "--build-arg", f"BASE={base_image()}"]
    if CA_BUNDLE.is_file():
        args += ["--secret", f"id=ca,src={CA_BUNDLE}"]
    return args


def build(tag: str, containerfile: Path, context: Path, **build_arg: str) -> float:
    """Build `tag`; the seconds it took (podman's layer cache makes a rebuild quick)."""
    started = time.monotonic()
    extra = [a for k, v in build_arg.items() for a in ("--build-arg", f"{k}={v}")]
    podman(
        "build", "--tag", tag, "--file", containerfile, *build_args(), *extra, context,
        timeout_s=BUILD_TIMEOUT_S,
    )  # fmt: skip
    return time.monotonic() - started


def relay_image() -> tuple[str, float]:
    """`RELAY` built from the repository's Dockerfile, and the seconds it took."""
    return RELAY, build(RELAY, ROOT / "Dockerfile", ROOT, EXTRAS="local")


def image_size_mb(name: str) -> float:
    return int(podman("image", "inspect", "--format", "{{.Size}}", name).strip()) / 1e6


def run_argv(
    name: str, image: str, command: Sequence[str], env: Mapping[str, str], *extra: str
) -> list[str]:
    """`podman run` in the foreground for a Supervisor to start (its output is the log, and
    podman passes the signals it gets on to the container), on the host's network."""
    settings = [a for k, v in env.items() for a in ("--env", f"{k}={v}")]
    # No health-check timer: podman schedules one with systemd, which these machines do not
    # run; a test runs the image's check itself (`podman healthcheck run`).
    return [
        "podman", "run", "--rm", "--name", name, "--network", "host", "--health-interval",
        "disable", *settings, *extra, image, *command,
    ]  # fmt: skip


def remove(*names: str) -> None:
    """Remove containers whatever their state (a test's teardown)."""
    if names:
        podman("rm", "--force", "--ignore", "--time", "0", *names, check=False)
