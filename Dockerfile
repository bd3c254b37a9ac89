# vidloc: one image for every role (worker, bridge, api, submit, stack init); the role is the
# command, e.g. `docker run IMAGE worker`. decord ships x86-64 wheels only: build for amd64.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ffmpeg: the PyAV fallback decodes what decord cannot (AV1 and friends) and probes odd files.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY producers ./producers
COPY vidloc ./vidloc
COPY workers ./workers
RUN pip install . && useradd --create-home --uid 10001 --shell /usr/sbin/nologin vidloc

USER vidloc
# Jobs download each video into a temp dir under here; mount a volume for large videos.
ENV VIDLOC_WORK_DIR=/home/vidloc/work
RUN mkdir -p /home/vidloc/work

# 8080: `vidloc api`; 9400: worker /metrics (VIDLOC_METRICS_PORT).
EXPOSE 8080 9400
ENTRYPOINT ["vidloc"]
CMD ["--help"]
