# vidloc: one image for every role (worker, bridge, api, init, submit); the role is the command,
# e.g. `docker run IMAGE worker`. decord ships x86-64 wheels only: build for amd64.
#
# The base is plain Debian bookworm: Docker Hub's debian:bookworm-slim by default, or
# localhost/debian:bookworm made with debootstrap where no image registry is reachable
# (infra/images/debian/make-base.sh). Python is Debian's python3 (3.11); the Python packages are
# wheels from PyPI. Only the product packages are copied: dev tooling (devkit/) stays out.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/vidloc/bin:$PATH

# No ffmpeg package: the product never runs an ffmpeg binary; decord, PyAV and OpenCV wheels
# carry their own decoder libraries.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/vidloc

WORKDIR /app
# Dependencies first, from pyproject's own list, so a code change does not download them again.
# A TLS-intercepting proxy's CA can be lent to this step as a build secret (id "ca"); it is
# never written into the image.
COPY pyproject.toml ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" >/tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY README.md ./
COPY contracts ./contracts
COPY producers ./producers
COPY vidloc ./vidloc
COPY workers ./workers
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && pip install --no-deps . \
    && rm -rf build *.egg-info \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin vidloc

USER vidloc
# Jobs download each video into a temp dir under here; mount a volume for large videos.
ENV VIDLOC_WORK_DIR=/home/vidloc/work
RUN mkdir -p /home/vidloc/work

# 8080: `vidloc api`; 9400: worker /metrics (VIDLOC_METRICS_PORT).
EXPOSE 8080 9400 9401
ENTRYPOINT ["vidloc"]
CMD ["--help"]
