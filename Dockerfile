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
RUN pip install --no-cache-dir ".[${EXTRAS}]" \
    # onnxruntime and onnxruntime-gpu install the same module: keep only the GPU build.
    && if echo "${EXTRAS}" | grep -q gpu; then \
         pip uninstall -y onnxruntime onnxruntime-gpu \
         && pip install --no-cache-dir --no-deps onnxruntime-gpu; \
       fi
RUN useradd --create-home faceprint
USER faceprint
ENV FACEPRINT_HOST=0.0.0.0 FACEPRINT_DATA_DIR=/home/faceprint/data
EXPOSE 8000
CMD ["faceprint", "serve"]
