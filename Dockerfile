# syntax=docker/dockerfile:1
# Tessera: a slim, non-root image. Configuration (idp.yaml + realms/) is mounted at
# /etc/tessera; state that must survive restarts (the generated key-encryption key when
# IDP_KEY_ENCRYPTION_KEY is not set, the applied-config record for `idp plan`, the mail
# outbox) lives in /var/lib/tessera. See compose.yaml and the README's "Operations".

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY src ./src
# Wheels of the project and of everything it needs (all have binary wheels: no compiler).
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    IDP_CONFIG=/etc/tessera/idp.yaml
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels tessera-idp \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/tessera --create-home --shell /usr/sbin/nologin tessera
# A working default, replaced by the mounted configuration.
COPY deploy/idp.yaml /etc/tessera/idp.yaml
COPY realms /etc/tessera/realms
USER tessera:tessera
WORKDIR /var/lib/tessera
EXPOSE 4000
# Liveness only (the process answers); /readyz, which also checks PostgreSQL and Redis, is
# for the load balancer: restarting Tessera does not bring a database back.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('IDP_HEALTHCHECK_URL', 'http://127.0.0.1:4000/healthz'), timeout=2)"]
# SIGTERM drains the requests in flight (up to 15 s) before the process exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["idp"]
CMD ["serve"]
