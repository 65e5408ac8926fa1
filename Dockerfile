# One image for every service (API, bridge, Ray head and workers). It installs with the same
# command and the same lock as a developer's `make install`.
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends make curl libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml requirements.lock README.md Makefile ./
COPY jobs ./jobs
COPY dsp ./dsp
COPY actors ./actors
COPY bridge ./bridge
COPY graph_api ./graph_api
COPY cli ./cli
RUN make install VENV=/app/.venv

ENV PATH="/app/.venv/bin:${PATH}" \
    AUDIO_ENGINE_DATA_DIR=/data \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8000
CMD ["audio-engine", "serve"]
