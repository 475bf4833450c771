# syntax=docker/dockerfile:1
# rnn-serve: TorchServe 0.12 with our two archives, token keys on, bound to 0.0.0.0 inside the
# container's own network namespace. Needs BuildKit (Docker 23+ uses it by default).
#
#   docker build -t rnn-serve:cpu .                                # archives from model_store/
#   docker build -t rnn-serve:cuda --build-arg VARIANT=cuda .      # torch's CUDA 12 wheel
#   docker build -t rnn-serve:cpu --build-arg TRAIN=1 --build-context data=../shared/data .
#
# Stages: base-<VARIANT> -> base -> builder (the venv) -> models-<TRAIN> -> runtime. Only the
# stages the final one needs are built, so VARIANT and TRAIN pick a path through this file.
ARG VARIANT=cpu
ARG TRAIN=0
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base-cpu

# The cu12x torch wheel carries the CUDA runtime libraries (nvidia-* wheels), so a CUDA base
# image would only add a second copy of them; the driver comes from the host through the NVIDIA
# container toolkit, which reads these variables (Kubernetes' device plugin sets its own).
FROM ${PYTHON_IMAGE} AS base-cuda
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# A stage of this file picked by a build argument, not an image to tag.
# hadolint ignore=DL3006
FROM base-${VARIANT} AS base
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ---- builder: one venv with torch and the `serve` group of pyproject.toml's pins ----
FROM base AS builder
ARG VARIANT
ARG TORCH_CUDA=cu128
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /build
COPY pyproject.toml requirements-torch.txt ./
COPY scripts/pins.py scripts/
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first and from PyTorch's own index: the CPU wheel, or the CUDA build of the same
# version (anything else would let pip pick a multi-GB default build).
RUN if [ "$VARIANT" = cuda ]; then index="$TORCH_CUDA"; else index=cpu; fi \
    && pip install --no-cache-dir --index-url "https://download.pytorch.org/whl/${index}" \
        -r requirements-torch.txt
# Only the packages serving needs (training, plots, load tests and dev tools stay out of the
# image); tests/unit/test_dockerfile.py checks that they cover every import of the served code.
RUN python scripts/pins.py serve > serve.txt \
    && pip install --no-cache-dir -c requirements-torch.txt -r serve.txt

# ---- trainer (TRAIN=1): train and archive both models from the data build context ----
FROM builder AS trainer
ARG TRAIN_PROFILE=default
RUN python scripts/pins.py train > train.txt \
    && pip install --no-cache-dir -c requirements-torch.txt -r train.txt
COPY models/ models/
COPY handlers/ handlers/
COPY training/ training/
COPY serving/ serving/
# `data` is a named build context (--build-context data=DIR), not a stage of this file.
# hadolint ignore=DL3022
COPY --from=data . /data/
ENV DATA_DIR=/data \
    HF_HUB_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1
# Every model handlers/registry.py declares, trained by its own trainer.
RUN set -e; for m in $(python -m handlers.registry names); do \
        python -m "$(python -m handlers.registry trainer "$m")" --profile "$TRAIN_PROFILE" \
            --out "artifacts/$m"; \
        python -m training.archive "$m" --artifact "artifacts/$m" --export /models; \
    done

# ---- where the archives come from: model_store/ (TRAIN=0) or the trainer (TRAIN=1) ----
FROM scratch AS models-0
# Every archive in model_store/ (`make models` builds one per registered model).
COPY model_store/*.mar /models/

FROM trainer AS models-1

# As above: a stage of this file, not an image.
# hadolint ignore=DL3006
FROM models-${TRAIN} AS models

# ---- runtime: Java for TorchServe's frontend, tini as PID 1, the venv, code and archives ----
FROM base AS runtime
# Debian's security updates replace package versions, so exact pins would break rebuilds;
# the base image tag pins the release (bookworm) instead.
# hadolint ignore=DL3008
RUN apt-get update \
    && mkdir -p /usr/share/man/man1 \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY serving/ serving/
# serving/ drains through the handlers' graceful-stop protocol and reads the model registry
# (both plain Python, no torch).
COPY handlers/__init__.py handlers/drain.py handlers/registry.py handlers/
COPY --from=models /models/ model_store/
RUN mkdir runs && chown app:app runs
ENV PATH=/opt/venv/bin:$PATH \
    RNN_SERVE_HOST=0.0.0.0 \
    RNN_SERVE_AUTH=on \
    RNN_SERVE_MODEL_STORE=/app/model_store \
    RNN_SERVE_RUN_DIR=/app/runs/server
USER 10001:10001
EXPOSE 8080 8081 8082
# Ready means every worker of every model is READY (TorchServe's /ping is Healthy earlier).
HEALTHCHECK --interval=30s --timeout=15s --start-period=180s --retries=3 \
    CMD ["python", "-m", "serving.healthcheck"]
# tini reaps the daemonized TorchServe process when it exits, so its pid really disappears.
ENTRYPOINT ["tini", "--", "python", "-m", "serving.entrypoint"]
