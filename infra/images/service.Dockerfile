# syntax=docker/dockerfile:1.7
# One Dockerfile for the seven service images; the service is a build argument:
#   docker build -f infra/images/service.Dockerfile --build-arg SERVICE=worker-email -t taskfleet-worker-email .
#   (podman/buildah alike; `make images` builds all seven on locally made bases, see docs/images.md)
# SERVICE is a deployed workspace member: api, beat, queue-exporter, worker-default, worker-matching, worker-email,
# worker-sync. Only taskfleet-$SERVICE and its dependencies are installed, from uv.lock; the runtime stage has no
# uv, no compiler, no sources, and runs as a non-root user on a read-only root filesystem (writable paths are
# emptyDirs at /tmp). Bind-mount targets are absolute: buildah rejects relative ones (BuildKit takes both).
#
# Behind a TLS-intercepting proxy, give uv the proxy's CA and tell it to trust the system store:
#   --build-arg UV_SYSTEM_CERTS=1 --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt
# (HTTP(S)_PROXY are predefined build arguments and pass through as usual.) Without them uv uses its own roots.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.8

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
ARG UV_SYSTEM_CERTS=
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Third-party dependencies first: this layer changes only with uv.lock.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca,required=false \
    --mount=type=bind,source=uv.lock,target=/src/uv.lock \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    --mount=type=bind,source=services,target=/src/services \
    test -n "$SERVICE" || { echo "build argument SERVICE is required" >&2; exit 1; }; \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    uv sync --frozen --no-dev --no-install-workspace --package "taskfleet-$SERVICE"
COPY pyproject.toml uv.lock ./
COPY services ./services
# The launcher execs the service: it is PID 1 and gets SIGTERM itself (Celery's warm shutdown, uvicorn's drain).
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    uv sync --frozen --no-dev --no-editable --package "taskfleet-$SERVICE" \
 && case "$SERVICE" in \
      api) command='uvicorn --factory taskfleet_api.main:create_api --host 0.0.0.0' ;; \
      *) command="python -m taskfleet_$(echo "$SERVICE" | tr - _)" ;; \
    esac \
 && printf '#!/bin/sh\n# taskfleet-%s: arguments (the chart'"'"'s args) pass through.\nexec %s "$@"\n' \
      "$SERVICE" "$command" > /app/.venv/bin/taskfleet-service \
 && chmod 0755 /app/.venv/bin/taskfleet-service

FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
RUN groupadd --system --gid 10001 taskfleet \
 && useradd --system --uid 10001 --gid taskfleet --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin taskfleet
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WORKER_HEALTH_DIR=/tmp/health \
    BEAT_SCHEDULE_FILE=/tmp/celerybeat-schedule
LABEL org.opencontainers.image.title="taskfleet-${SERVICE}"
WORKDIR /app
USER 10001:10001
# The API listens on 8000, every other service serves metrics/health on 9808.
EXPOSE 8000 9808
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/.venv/bin/taskfleet-service"]
