# syntax=docker/dockerfile:1
#
# collab: Yjs sync server image.
#
#   docker build -t collab .
#   docker run --rm -p 127.0.0.1:1234:1234 collab
#
# Two stages: the builder makes a self-contained virtualenv in /opt/venv from
# the pinned requirements.lock plus the project's own wheel; the runtime stage
# copies only that venv and removes the base image's pip, so no pip, wheel
# cache or build tools ship.

FROM python:3.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first: this layer is reused until requirements.lock changes.
COPY requirements.lock ./
RUN pip install --no-cache-dir --requirement requirements.lock

# Then the project itself, without touching the pinned dependency set. Last,
# the venv loses what only installing needed: pip and setuptools, and the test
# suites some packages ship (aiosqlite/tests), as the official image strips
# its own; `collab --help` then proves the server still imports.
COPY pyproject.toml README.md ./
COPY collab ./collab
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/wheels . \
    && pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
    && pip uninstall --yes pip setuptools \
    && find /opt/venv -depth -type d \( -name test -o -name tests \) -exec rm -rf '{}' + \
    && collab --help > /dev/null


FROM python:3.11-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="collab" \
      org.opencontainers.image.description="Yjs collaborative-editing sync server"

# The base image's own pip, setuptools and wheel are not needed to run either.
# A fixed numeric uid/gid so orchestrators (and `runAsNonRoot` checks) can
# verify the user without reading /etc/passwd.
RUN python -m pip uninstall --yes --root-user-action=ignore pip setuptools wheel \
    && groupadd --system --gid 10001 collab \
    && useradd --system --uid 10001 --gid collab --home-dir /data \
       --no-create-home --shell /usr/sbin/nologin collab \
    && mkdir -p /data \
    && chown collab:collab /data

COPY --from=builder /opt/venv /opt/venv

# COLLAB_LOG_FORMAT=json: one JSON object per line for CloudWatch / Loki.
# The default store is SQLite on the /data volume; compose and Fargate point
# COLLAB_STORE_URL at PostgreSQL instead.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COLLAB_LOG_FORMAT=json \
    COLLAB_STORE_URL=sqlite:////data/collab.sqlite3

WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 1234

# Liveness only (not /readyz): a Redis outage must show as "not ready", not
# get the container killed and restarted in a loop. No curl in the image:
# urlopen raises on any non-2xx answer or refused connection -> exit 1.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:1234/healthz', timeout=4)"]

# Exec form, no shell in between: SIGTERM goes straight to the server, which
# turns /readyz to 503, refuses new sockets, closes the rest with 1001 after
# COLLAB_DRAIN_SECONDS, flushes the store and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["collab"]
CMD ["serve", "--host", "0.0.0.0", "--port", "1234"]
