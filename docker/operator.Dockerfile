# syntax=docker/dockerfile:1.7
#
# The HEAN operator image: `hean[operator]` (kopf and the Kubernetes client).
# The Helm chart runs it as `hean operator run --metrics-port 8000
# --liveness-port 8081 ...` with a read-only root filesystem, an emptyDir at
# /tmp and runAsUser 10001.
#
# Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t ghcr.io/hean-io/hean-operator:0.1.0 .
#
# The base is pinned to a patch release. Before a release, pin it by digest too
# (resolve with `docker buildx imagetools inspect python:3.11.14-slim-bookworm`):
#   FROM python:3.11.14-slim-bookworm@sha256:<digest> AS build

FROM python:3.11.14-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY contract/ contract/
COPY desk/ desk/
COPY engine/ engine/
COPY operator/ operator/

# The hean wheel and wheels of its dependencies with the operator extra.
RUN python -m pip wheel --wheel-dir /wheels ".[operator]"


FROM python:3.11.14-slim-bookworm AS runtime

ARG HEAN_VERSION=0.1.0

LABEL org.opencontainers.image.title="hean-operator" \
      org.opencontainers.image.description="HEAN Kubernetes operator (hean operator run)" \
      org.opencontainers.image.version="${HEAN_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/hean-io/hean"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/hean \
    PATH=/opt/hean/bin:$PATH \
    HOME=/tmp

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/hean \
    && /opt/hean/bin/pip install --no-cache-dir --no-index --find-links=/wheels "hean[operator]==${HEAN_VERSION}" \
    && groupadd --system --gid 10001 hean \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin hean

# Nothing is written outside /tmp (an emptyDir in the pod); the root can be read-only.
WORKDIR /tmp
USER 10001:10001

# 8000: Prometheus /metrics; 8081: kopf's liveness endpoint /healthz.
EXPOSE 8000 8081

# kopf's liveness endpoint answers 200 while the operator's event loop runs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/healthz', timeout=3)"]

ENTRYPOINT ["hean"]
CMD ["operator", "run"]
