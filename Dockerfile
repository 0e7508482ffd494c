# asyncwasm serve in a container: the embedded http_server (or your module)
# on :8080, Prometheus metrics and the /healthz check on :9090, one worker
# process per CPU the container may use (its cgroup quota counts).
#
#   docker build -t asyncwasm .
#   docker run --rm -p 8080:8080 -p 9090:9090 asyncwasm
#   docker run --rm -p 8080:8080 -v $PWD/app.wasm:/app/app.wasm:ro asyncwasm \
#       asyncwasm serve /app/app.wasm --listen 0.0.0.0:8080 --metrics 0.0.0.0:9090 --workers auto
#
# Workers are stateless: run as many containers as you like behind a TCP
# load balancer, with /healthz on the metrics port as the health check
# (deploy/kubernetes.yaml). tests/test_deploy.py runs the CMD below locally.

FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY asyncwasm ./asyncwasm
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --no-create-home asyncwasm
USER 10001
EXPOSE 8080 9090
# SIGTERM drains: listening stops, in-flight requests get --grace seconds.
STOPSIGNAL SIGTERM
CMD ["asyncwasm", "serve", "--listen", "0.0.0.0:8080", "--metrics", "0.0.0.0:9090", "--workers", "auto", "--instances", "64", "--grace", "20"]
