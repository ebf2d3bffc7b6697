FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service service
COPY indexing indexing
COPY retrieval retrieval
COPY liveness liveness
COPY migrations migrations
ARG EXTRAS="s3,qdrant"
# CPU only: the GPU worker has its own image (Dockerfile.gpu), on a CUDA runtime base.
RUN pip install --no-cache-dir ".[${EXTRAS}]"
# The data dir exists in the image, owned by the service's user, so that a named volume
# mounted there starts with that owner (Docker copies it into a new volume).
RUN useradd --create-home faceprint && mkdir -p /home/faceprint/data \
    && chown faceprint:faceprint /home/faceprint/data
USER faceprint
ENV FACEPRINT_HOST=0.0.0.0 FACEPRINT_DATA_DIR=/home/faceprint/data
EXPOSE 8000
CMD ["faceprint", "serve"]
