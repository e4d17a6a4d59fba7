# The relay's image: the server, the worker and the other commands of the sqs-push-relay wheel,
# on Debian's Python (docs/deploying.md). One image, the command chooses the role:
#
#   podman build -t sqs-push-relay .                           # or docker build
#   podman build -t sqs-push-relay:local --build-arg EXTRAS=local .   # + sqs-relay-emulator
#   podman run sqs-push-relay sqs-relay-server    # sqs-relay-worker, sqs-relay-publish ...
#
# Behind a proxy that re-signs TLS, give the build its CA bundle as a secret; nothing of it stays
# in the image:  podman build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt .
#
# The wheel is built from this folder (the demo page's socket.io-client bundles, fetched once
# by `python -m server.web.assets`, ride along if they are there; else the build fetches them)
# and installed with the versions pinned in uv.lock, hashes checked, with the `tracing` extra
# (OpenTelemetry, off until OTEL_TRACES_EXPORTER is set: docs/tracing.md). The last stage has
# Python, tini and the installed environment: no compiler, no pip, no uv, no source.

ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
ARG EXTRAS=""
ARG UV_VERSION=0.13.9
ENV DEBIAN_FRONTEND=noninteractive \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
# The CA secret, when given, is trusted by pip, uv and npm for the RUN it is mounted in only.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca SSL_CERT_FILE=/run/secrets/ca; fi \
 && python3 -m venv /opt/uv \
 && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
WORKDIR /src
COPY . .
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then \
        export SSL_CERT_FILE=/run/secrets/ca NODE_EXTRA_CA_CERTS=/run/secrets/ca; \
    fi \
 && export PATH=/opt/uv/bin:$PATH \
 && uv export --frozen --no-default-groups --no-emit-project --no-header \
        --extra tracing ${EXTRAS:+--extra "$EXTRAS"} --output-file /tmp/requirements.txt \
 && uv venv --python /usr/bin/python3 /opt/relay \
 && uv pip install --no-cache --python /opt/relay/bin/python --require-hashes \
        --requirement /tmp/requirements.txt \
 && uv build --no-cache --wheel --out-dir /tmp/dist . \
 && uv pip install --no-cache --python /opt/relay/bin/python --no-deps /tmp/dist/*.whl

FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 tini ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --home-dir /srv --no-create-home --shell /usr/sbin/nologin relay
COPY --from=build /opt/relay /opt/relay
# HOST: a container's port is reached from outside it. ZMQ_BIND stays on loopback unless set
# (with CURVE keys: the server refuses a public bind without them). Bytecode was compiled at
# install, so a read-only root file system costs nothing at start.
ENV PATH=/opt/relay/bin:$PATH \
    HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /srv
USER 10001:10001
EXPOSE 8000 5555
# The server's liveness (/healthz) on $PORT; a worker container has no HTTP server unless
# METRICS_PORT is set, so its own health check is run --no-healthcheck or another command.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=2)"]
# tini as PID 1: it forwards SIGTERM to the relay (which drains within SHUTDOWN_TIMEOUT_S)
# and reaps what exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["sqs-relay-server"]
