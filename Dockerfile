# syntax=docker/dockerfile:1
#
# authbridge: `authbridge serve` (the issuer and the TokenReview webhook, gunicorn over
# TLS on 8443) by default; the same image runs `authbridge rbac watch` (the reconciler).
#
#   docker build -t registry.example.com/authbridge:0.1.0 .
#
# Two stages on the same base: the builder makes a wheel and installs it with its
# dependencies into a virtualenv at /opt/authbridge; the final stage copies only that
# virtualenv. The dependencies are uv.lock's, exactly: uv (itself pinned and
# hash-checked, scripts/uv-requirements.txt) exports the lock's runtime packages, without
# the dev extra, as a hashed requirements file, and pip installs it with
# --require-hashes, each from a binary wheel (--only-binary), so no stage needs a
# compiler and none is in the image. The build backend is the one pyproject.toml pins.
# No secret enters the build: keys, TLS material, the pepper and the DSN are mounted at
# run time (deploy/README.md), and .dockerignore keeps keys/ and data/ out of the build
# context.
#
# Read-only root filesystem: the server writes only to /tmp (gunicorn's worker
# heartbeat files; gunicorn's control socket is disabled in authbridge/web/server.py).
# /var/lib/authbridge/data is the SQLite store's default place (`sqlite:///data/…`
# relative to the working directory); in Kubernetes the store is PostgreSQL and
# nothing is written there.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# uv only exports the lock here (refusing one that no longer matches pyproject.toml).
COPY scripts/uv-requirements.txt ./scripts/
RUN pip install --no-cache-dir --require-hashes --only-binary=:all: --no-deps \
        -r scripts/uv-requirements.txt
# Only what the wheel is built from, and the lock (.dockerignore allows nothing else in).
COPY pyproject.toml uv.lock README.md ./
COPY authbridge ./authbridge
# Bytecode is made here and checked by hash rather than by source mtime, so the
# read-only image never needs to (and never tries to) recompile anything at start.
RUN uv export --quiet --locked --no-emit-project --format requirements-txt \
        --output-file /tmp/requirements.txt \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/authbridge \
 && /opt/authbridge/bin/pip install --no-cache-dir --no-compile --only-binary=:all: \
        --require-hashes -r /tmp/requirements.txt \
 && /opt/authbridge/bin/pip install --no-cache-dir --no-compile --no-deps \
        /wheels/authbridge-*.whl \
 && /opt/authbridge/bin/python -m compileall -q --invalidation-mode unchecked-hash \
        /opt/authbridge/lib

FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="authbridge" \
      org.opencontainers.image.description="Self-hosted IAM for Kubernetes: IAM store, OIDC issuer, TokenReview webhook and RBAC mapping" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A fixed, numeric uid/gid (10001): Kubernetes can check runAsNonRoot only against a
# numeric USER, and the manifests' runAsUser/fsGroup name the same ids.
RUN groupadd --system --gid 10001 authbridge \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin authbridge \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/authbridge \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/authbridge/data

# The virtualenv's scripts name /opt/authbridge/bin/python, a link to the base image's
# interpreter: that is why both stages use the same base.
COPY --from=builder /opt/authbridge /opt/authbridge

ENV PATH=/opt/authbridge/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    AUTHBRIDGE_KEYS_DIR=/etc/authbridge/keys \
    AUTHBRIDGE_MAPPING_FILE=/etc/authbridge/mapping/mapping.yaml \
    AUTHBRIDGE_BIND=0.0.0.0:8443

WORKDIR /var/lib/authbridge
# The only paths written to. With `docker run --read-only` each gets a writable volume;
# in Kubernetes /tmp is an emptyDir (deploy/deployment.yaml) and the store is PostgreSQL.
VOLUME ["/tmp", "/var/lib/authbridge/data"]
EXPOSE 8443
USER 10001:10001

# Liveness over loopback without curl (the slim image has none). Certificate checks
# are off on purpose: the serving certificate names the Service's DNS names and IPs,
# not 127.0.0.1, its CA is wherever the operator mounted it, and this probe sends no
# credential and trusts no answer beyond "the process serves HTTPS" (the kubelet's
# HTTPS probes skip verification for the same reason). Kubernetes ignores HEALTHCHECK
# and uses the Deployment's probes; under plain Docker the reconciler
# (`rbac watch`) has no HTTP port, so run it with --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request; ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE; port = os.environ.get('AUTHBRIDGE_BIND', '0.0.0.0:8443').rpartition(':')[2]; urllib.request.urlopen('https://127.0.0.1:' + port + '/healthz', timeout=4, context=ctx)"]

ENTRYPOINT ["authbridge"]
CMD ["serve"]
