"""The deployment files (Dockerfile, deploy/kubernetes.yaml,
deploy/asyncwasm.service) agree with each other and with ``asyncwasm
serve``: their command lines parse with the real flags, the probes and
scrape annotations point at the metrics port the image serves, and the
image's start command, run here with loopback addresses, answers on
``/healthz`` and serves requests. Loopback only; bounded in time."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from asyncwasm.cli import build_parser, load_serve
from asyncwasm.hostnet import parse_address

from .test_serve_metrics import http_get

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30


def _docker_cmd() -> list[str]:
    """The Dockerfile's CMD (exec form)."""
    text = (ROOT / "Dockerfile").read_text()
    found = re.findall(r"^CMD (\[.*\])\s*$", text, re.MULTILINE)
    assert len(found) == 1, "one CMD in exec (JSON) form"
    return json.loads(found[0])


def _serve_args(argv: list[str]):
    """``asyncwasm serve ...`` parsed by the real command line."""
    assert Path(argv[0]).name == "asyncwasm" and argv[1] == "serve", argv
    serve, reason = load_serve()
    assert serve is not None, reason
    import io

    parser = build_parser(io.StringIO(), io.StringIO(), serve=serve)
    return parser.parse_args(argv[1:])


def _manifests() -> dict[str, dict]:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()))
    return {doc["kind"]: doc for doc in docs if doc}


def test_kubernetes_manifests_match_the_image():
    args = _serve_args(_docker_cmd())
    listen_port = parse_address(args.listen[0])[1]
    metrics_port = parse_address(args.metrics)[1]
    manifests = _manifests()
    assert set(manifests) == {"Deployment", "Service"}
    deployment, service = manifests["Deployment"], manifests["Service"]
    template = deployment["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = template["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": listen_port, "metrics": metrics_port}
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz" and ports[get["port"]] == metrics_port
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(metrics_port)
    assert annotations["prometheus.io/path"] == "/metrics"
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "http"
    # The pod gets longer than the drain before it is killed.
    assert template["spec"]["terminationGracePeriodSeconds"] > args.grace
    # An explicit worker count, or auto: one per CPU of the container's quota.
    assert args.workers == "auto" and container["resources"]["limits"]["cpu"]


def test_systemd_unit_runs_a_real_serve_command():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(ROOT / "deploy" / "asyncwasm.service")
    service = unit["Service"]
    args = _serve_args(shlex.split(service["ExecStart"]))
    assert args.tls_cert and args.tls_key and args.metrics and args.workers == "auto"
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "mixed"
    assert float(service["TimeoutStopSec"]) > args.grace
    assert "kill -HUP" in service["ExecReload"]  # systemctl reload: new certificate
    assert int(service["LimitNOFILE"]) >= 65536
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_image_start_command_serves_here(tmp_path):
    argv = _docker_cmd()
    # The same command, on free loopback ports, with fewer instances (CI).
    local = []
    for word in argv[1:]:
        local.append("127.0.0.1:0" if re.fullmatch(r"0\.0\.0\.0:\d+", word) else word)
    local[local.index("--instances") + 1] = "4"
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "asyncwasm", *local], stdout=subprocess.DEVNULL,
                                stderr=log, cwd=ROOT)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            text = log_path.read_text()
            port = re.search(r"listening on http://127\.0\.0\.1:(\d+)/ \((\d+ workers x )?4 instances\)", text)
            metrics = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", text)
            if port and metrics:
                break
            assert proc.poll() is None and time.monotonic() < deadline, text
            time.sleep(0.05)
        while http_get(int(metrics[1]), "/healthz")[0] != 200:  # 503 until every worker is up
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert http_get(int(port[1]), "/") == (200, b"hello from asyncwasm\n")
        assert b"asyncwasm_connections_accepted_total 1.0" in http_get(int(metrics[1]), "/metrics")[1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("name", ["Dockerfile", ".dockerignore"])
def test_the_image_builds_from_the_package_sources(name):
    text = (ROOT / name).read_text()
    if name == "Dockerfile":
        for path in re.findall(r"^COPY (?!--from)(.+?) \S+$", text, re.MULTILINE):
            for part in path.split():
                assert (ROOT / part).exists(), part
    else:  # what the build copies is not ignored
        ignored = {line.strip() for line in text.splitlines() if line.strip()}
        assert not ignored & {"asyncwasm", "setup.py", "pyproject.toml", "README.md"}
