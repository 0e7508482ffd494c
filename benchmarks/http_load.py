"""HTTP load benchmark: Wasm servers hosted by asyncwasm vs. Python and native.

    python benchmarks/http_load.py                      # every target, 5 s each, wrk if installed
    python benchmarks/http_load.py --quick              # 2 s each
    python benchmarks/http_load.py --tool trio --concurrency 16 --duration 3
    python benchmarks/http_load.py --targets asyncwasm,h11 --json results/http.json
    python benchmarks/http_load.py --rounds 3             # interleaved rounds, medians (noisy machines)
    python benchmarks/http_load.py -c 1000 --rate 10000 --targets asyncwasm-poll,native-poll   # latency below saturation

Targets, each a separate server process on 127.0.0.1, loaded one after the
other by the same load generator in one run:

- ``asyncwasm``: ``asyncwasm serve`` with the embedded netmods/http_server,
  N instances (N = concurrency) sharing one listener through the handoff;
- ``asyncwasm-tls``: the same behind TLS (``--tls-cert``/``--tls-key``, a
  certificate made for the run; TLS 1.3, the clients keep their sessions);
- ``asyncwasm-workers``: the same as ``asyncwasm`` with ``--workers 2``,
  each worker running half the instances (every core, one shared listener);
- ``asyncwasm-poll``: ``asyncwasm serve netmods/http_server_poll.wasm
  --instances 1``: one instance serving every connection with poll_oneoff;
- ``h11``: benchmarks/h11_server.py, pure Python trio + h11, same routes;
- ``native-poll``: http_server_poll.c built with gcc -O2 over the POSIX shim
  (netmods/common/wasi_native.c), one process: the same one-thread setting
  as asyncwasm, so the "% of native" column uses it;
- ``native``: http_server.c built the same way, N processes blocked in
  accept on one listening socket (uses every core; shown for reference).

Load: ``wrk`` (``apt-get install wrk``) when installed, else (or with
``--tool trio``) the trio load generator below: ``concurrency`` keep-alive
connections, each sending the next request as soon as the previous answer
is complete, for ``duration`` seconds after a warm-up; every response is
checked (status 200 and body). Requests are ``GET /`` unless ``--echo
BYTES`` asks for ``POST /echo`` with a body of that size.

With ``--rate`` every connection pauses before each request (wrk's
``delay`` hook) so that the offered load is about that many requests/s:
below saturation the latency is the server's answer time. Without it, wrk
sends as fast as answers come, and with many connections the latency is
mostly queueing: a closed loop of C connections at X requests/s waits
C / X seconds per request on average (Little's law), whoever is slow.

Reports requests/s, p50 and p99 latency, and the ratios the performance
issue sets targets for: asyncwasm / h11 (target >= 1.5) and asyncwasm /
native-poll (target >= 0.30); and the production ratios: TLS req/s as a
share of plain, ``--workers 2`` vs one process (on 2 cores expect at least
1.6x only when the load generator is not on the same cores: wrk takes
about a core of its own here).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import trio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NETMODS = ROOT / "netmods"
BUILD = HERE / "build" / "http"
HELLO = b"hello from asyncwasm\n"
TARGETS = ["asyncwasm", "asyncwasm-tls", "asyncwasm-workers", "asyncwasm-poll", "h11", "native-poll", "native"]
WORKERS = 2
NATIVE_FLAGS = ["-O2", "-std=gnu11", "-DNDEBUG"]


@dataclass
class Result:
    target: str
    tool: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    cpu_us_per_request: float = 0.0  # server CPU time (user + system) per request
    note: str = ""
    extra: dict = field(default_factory=dict)


# -- server CPU time ------------------------------------------------------------------------

#: Pids of the server being measured (set by start_target). Their CPU time
#: per request is the figure least disturbed by other load on the machine.
_SERVER_PIDS: list[int] = []
_TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (by the parent field of /proc/*/stat: trio
    starts processes from a worker thread, so the thread-wise children
    lists miss them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def server_cpu_seconds() -> float:
    """User + system CPU seconds used so far by the server processes (and
    their children: ``--workers``)."""
    total = 0
    for pid in _SERVER_PIDS + [child for pid in _SERVER_PIDS for child in _children(pid)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICK


def _cpu_per_request(cpu_seconds: float, requests: int) -> float:
    return cpu_seconds / requests * 1e6 if requests else 0.0


# -- the trio load generator ----------------------------------------------------------------

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


def make_request(echo: Optional[int]) -> tuple[bytes, bytes]:
    """(request bytes, expected response body)."""
    if echo is None:
        return b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n", HELLO
    body = (b"0123456789abcdef" * (echo // 16 + 1))[:echo]
    head = b"POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n" % len(body)
    return head + body, body


def _client_tls() -> ssl.SSLContext:
    """The load generator's TLS client (the certificate is the run's own)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class _Worker:
    """One keep-alive connection sending requests back to back (over TLS
    with ``tls``)."""

    def __init__(self, request: bytes, expected: bytes, tls: Optional[ssl.SSLContext] = None) -> None:
        self.request = request
        self.expected = expected
        self.tls = tls
        self.latencies: list[float] = []
        self.errors = 0

    async def run(self, host: str, port: int, recording: list[bool]) -> None:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await sock.connect((host, port))
            if self.tls is None:
                send, recv = sock.send, sock.recv
            else:
                stream = trio.SSLStream(trio.SocketStream(sock), self.tls, server_hostname=host)
                send, recv = stream.send_all, stream.receive_some
            buf = b""
            clock = time.perf_counter
            while True:
                start = clock()
                await send(self.request)
                buf, ok = await self._response(recv, buf)
                if recording[0]:
                    self.latencies.append(clock() - start)
                    if not ok:
                        self.errors += 1
        except (OSError, trio.BrokenResourceError):
            self.errors += 1
        finally:
            sock.close()

    async def _response(self, recv, buf: bytes) -> tuple[bytes, bool]:
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            chunk = await recv(65536)
            if not chunk:
                raise ConnectionResetError("server closed the connection")
            buf += chunk
        match = _CONTENT_LENGTH.search(buf, 0, end + 2)
        total = end + 4 + (int(match.group(1)) if match else 0)
        while len(buf) < total:
            chunk = await recv(65536)
            if not chunk:
                raise ConnectionResetError("server closed the connection")
            buf += chunk
        ok = buf.startswith(b"HTTP/1.1 200 ") and buf[end + 4:total] == self.expected
        return buf[total:], ok


async def trio_load(host: str, port: int, concurrency: int, duration: float, warmup: float,
                    echo: Optional[int], tls: bool = False) -> tuple[int, int, float, list[float], float]:
    """(requests, errors, seconds, latencies, server CPU seconds) of a run."""
    request, expected = make_request(echo)
    context = _client_tls() if tls else None
    workers = [_Worker(request, expected, context) for _ in range(concurrency)]
    recording = [False]
    async with trio.open_nursery() as nursery:
        for worker in workers:
            nursery.start_soon(worker.run, host, port, recording)
        await trio.sleep(warmup)
        recording[0] = True
        start, cpu_start = time.perf_counter(), server_cpu_seconds()
        await trio.sleep(duration)
        recording[0] = False
        seconds, cpu = time.perf_counter() - start, server_cpu_seconds() - cpu_start
        nursery.cancel_scope.cancel()
    latencies = sorted(x for w in workers for x in w.latencies)
    return len(latencies), sum(w.errors for w in workers), seconds, latencies, cpu


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def run_trio(target: str, port: int, args: argparse.Namespace) -> Result:
    requests, errors, seconds, lat, cpu = trio.run(trio_load, "127.0.0.1", port, args.concurrency,
                                                   args.duration, args.warmup, args.echo, _is_tls(target))
    return Result(target, "trio", requests, errors, seconds, requests / seconds,
                  percentile(lat, 0.5) * 1e3, percentile(lat, 0.99) * 1e3, _cpu_per_request(cpu, requests))


# -- wrk --------------------------------------------------------------------------------------


_WRK_LUA = """wrk.method = "POST"
wrk.path = "/echo"
wrk.body = string.rep("0123456789abcdef", %d):sub(1, %d)
wrk.headers["Content-Type"] = "application/octet-stream"
"""


def _wrk_time(text: str) -> float:
    """wrk's '1.23ms' / '456.00us' / '1.01s' in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk time {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def _is_tls(target: str) -> bool:
    return target == "asyncwasm-tls"


# Each connection waits this many ms before each request (wrk's delay hook):
# an offered load of connections / delay requests per ms.
_WRK_DELAY_LUA = """function delay()
  return %d
end
"""


def rate_delay_ms(concurrency: int, rate: float) -> int:
    """The pause per connection (ms, at least 1) that offers about ``rate``
    requests/s over ``concurrency`` connections."""
    return max(1, round(concurrency / rate * 1000))


def run_wrk(target: str, port: int, args: argparse.Namespace) -> Result:
    url = f"{'https' if _is_tls(target) else 'http'}://127.0.0.1:{port}/"
    base = ["wrk", "-t1", f"-c{args.concurrency}", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if args.echo is not None:
            script.write(_WRK_LUA % (args.echo // 16 + 1, args.echo))
        if args.rate is not None:
            script.write(_WRK_DELAY_LUA % rate_delay_ms(args.concurrency, args.rate))
        if args.echo is not None or args.rate is not None:
            script.flush()
            base += ["-s", script.name]
        if args.warmup > 0:
            subprocess.run(base + [f"-d{max(1, round(args.warmup))}s", url], capture_output=True, check=True)
        cpu_start = server_cpu_seconds()
        out = subprocess.run(base + [f"-d{max(1, round(args.duration))}s", url], capture_output=True, text=True,
                             check=True).stdout
        cpu = server_cpu_seconds() - cpu_start
    requests = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _wrk_time(re.search(r"\n\s+50%\s+(\S+)", out).group(1))
    p99 = _wrk_time(re.search(r"\n\s+99%\s+(\S+)", out).group(1))
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                                                        r"timeout (\d+)"):
        match = re.search(pattern, out)
        if match:
            errors += sum(int(g) for g in match.groups())
    return Result(target, "wrk", requests, errors, requests / rps if rps else 0.0, rps, p50, p99,
                  _cpu_per_request(cpu, requests))


# -- servers --------------------------------------------------------------------------------


def _wait_for_line(log: Path, pattern: str, proc: subprocess.Popen, timeout: float = 30) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, log.read_text(errors="replace"))
        if match:
            return match
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise RuntimeError(f"server did not report its address within {timeout} s:\n{log.read_text(errors='replace')}")


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _logged_server(argv: list[str], pattern: str) -> Iterator[int]:
    """Start ``argv``; yield the port its log (stderr) reports; stop it."""
    with tempfile.NamedTemporaryFile(prefix="http-bench-", suffix=".log") as log_file:
        log = Path(log_file.name)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log_file, cwd=ROOT)
        _SERVER_PIDS[:] = [proc.pid]
        try:
            yield int(_wait_for_line(log, pattern, proc).group(1))
        finally:
            _stop([proc])
            _SERVER_PIDS.clear()


def build_native(name: str) -> Path:
    """gcc -O2 build of netmods/<name> over the POSIX shim (cached)."""
    sys.path.insert(0, str(NETMODS))
    import build as netmods_build  # netmods/build.py

    module = next(m for m in netmods_build.MODULES if m.name == name)
    sources = [NETMODS / s for s in module.sources] + [NETMODS / "common" / "wasi_native.c"]
    exe = BUILD / name
    newest = max(p.stat().st_mtime for p in sources + list((NETMODS / "common").glob("*.h")))
    if not exe.exists() or exe.stat().st_mtime < newest:
        BUILD.mkdir(parents=True, exist_ok=True)
        cc = shutil.which("gcc") or shutil.which("cc")
        if cc is None:
            raise RuntimeError("gcc is needed for the native targets")
        subprocess.run([cc, *NATIVE_FLAGS, "-I", str(NETMODS / "common"), "-o", str(exe), *map(str, sources)],
                       check=True, cwd=NETMODS)
    return exe


@contextlib.contextmanager
def _native_server(name: str, processes: int) -> Iterator[int]:
    exe = build_native(name)
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    env = {"PATH": os.environ.get("PATH", ""), "LISTEN_FD": str(fd), "HTTP_MAX_CONNS": "4096"}
    procs = [subprocess.Popen([str(exe)], pass_fds=[fd], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(processes)]
    listener.close()
    _SERVER_PIDS[:] = [proc.pid for proc in procs]
    try:
        time.sleep(0.2)
        yield port
    finally:
        _stop(procs)
        _SERVER_PIDS.clear()


_SERVE_LINE = r"listening on https?://[^ ]*:(\d+)/"
_WORKERS_LINE = r"listening on https?://[^ ]*:(\d+)/ \(\d+ workers"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "http_load")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@contextlib.contextmanager
def start_target(target: str, args: argparse.Namespace) -> Iterator[int]:
    python = sys.executable
    instances = args.instances or args.concurrency
    serve = [python, "-m", "asyncwasm", "serve", "--listen", "127.0.0.1:0"]
    if target == "asyncwasm":
        with _logged_server(serve + ["--instances", str(instances)], _SERVE_LINE) as port:
            yield port
    elif target == "asyncwasm-tls":
        with tempfile.TemporaryDirectory(prefix="http-bench-tls-") as directory:
            cert, key = make_certificate(Path(directory))
            with _logged_server(serve + ["--instances", str(instances), "--tls-cert", str(cert),
                                         "--tls-key", str(key)], _SERVE_LINE) as port:
                yield port
    elif target == "asyncwasm-workers":
        with _logged_server(serve + ["--workers", str(WORKERS), "--instances", str(max(1, instances // WORKERS))],
                            _WORKERS_LINE) as port:
            yield port
    elif target == "asyncwasm-poll":
        module = str(NETMODS / "http_server_poll" / "http_server_poll.wasm")
        with _logged_server([python, "-m", "asyncwasm", "serve", module, "--listen", "127.0.0.1:0",
                             "--instances", "1", "--env", "HTTP_MAX_CONNS=4096"], _SERVE_LINE) as port:
            yield port
    elif target == "h11":
        with _logged_server([python, str(HERE / "h11_server.py"), "--listen", "127.0.0.1:0"],
                            r"listening on [^ ]*:(\d+)") as port:
            yield port
    elif target == "native-poll":
        with _native_server("http_server_poll", 1) as port:
            yield port
    elif target == "native":
        with _native_server("http_server", args.instances or args.concurrency) as port:
            yield port
    else:
        raise ValueError(f"unknown target {target!r} (known: {', '.join(TARGETS)})")


def check_target(port: int, echo: Optional[int], tls: bool = False) -> None:
    """One request with http.client: the server answers correctly."""
    import http.client

    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=_client_tls()) if tls
            else http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    request, expected = make_request(echo)
    if echo is None:
        conn.request("GET", "/")
    else:
        conn.request("POST", "/echo", body=expected)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    if resp.status != 200 or body != expected:
        raise RuntimeError(f"bad answer from the server: {resp.status} {body[:80]!r}")


# -- the table -----------------------------------------------------------------------------


def median_result(results: list[Result]) -> Result:
    """The round with the median requests/s (its latencies with it), with
    the median of every round's server CPU per request (each round's own
    figure, so it need not come from the same round); the spread of all
    rounds goes in ``extra`` and the note."""
    ordered = sorted(results, key=lambda r: r.rps)
    middle = ordered[len(ordered) // 2]
    if len(results) > 1:
        middle.extra["rounds_rps"] = [round(r.rps) for r in results]
        cpu = sorted(r.cpu_us_per_request for r in results)
        middle.extra["rounds_cpu_us_per_request"] = [round(r.cpu_us_per_request, 2) for r in results]
        middle.cpu_us_per_request = cpu[len(cpu) // 2]
        if not middle.note:
            middle.note = f"median of {len(results)}: {ordered[0].rps:.0f}..{ordered[-1].rps:.0f}"
    return middle


def print_table(results: list[Result], out=sys.stdout) -> None:
    by = {r.target: r for r in results}
    h11 = by.get("h11")
    native = by.get("native-poll")
    print(f"{'target':16} {'tool':5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'x h11':>7} {'% native-poll':>14} {'CPU us/req':>11}", file=out)
    for r in results:
        vs_h11 = f"{r.rps / h11.rps:.2f}" if h11 and h11.rps else "-"
        vs_native = f"{100 * r.rps / native.rps:.0f}%" if native and native.rps else "-"
        print(f"{r.target:16} {r.tool:5} {r.rps:10.0f} {r.p50_ms:8.3f} {r.p99_ms:8.3f} {r.errors:7d} "
              f"{vs_h11:>7} {vs_native:>14} {r.cpu_us_per_request:11.1f}{'  ' + r.note if r.note else ''}",
              file=out)
    wasm = by.get("asyncwasm")
    if wasm and h11 and h11.rps:
        ratio = wasm.rps / h11.rps
        print(f"target: asyncwasm >= 1.5x h11: {ratio:.2f}x ({'met' if ratio >= 1.5 else 'NOT met'})", file=out)
    if wasm and native and native.rps:
        ratio = wasm.rps / native.rps
        print(f"target: asyncwasm >= 30% of native (one process): {100 * ratio:.0f}% "
              f"({'met' if ratio >= 0.3 else 'NOT met'})", file=out)
    tls, workers = by.get("asyncwasm-tls"), by.get("asyncwasm-workers")
    if wasm and wasm.rps and tls:
        print(f"TLS: asyncwasm-tls / asyncwasm = {tls.rps / wasm.rps:.2f} of the plain req/s"
              + (f", {tls.cpu_us_per_request / wasm.cpu_us_per_request:.2f}x the server CPU per request"
                 if wasm.cpu_us_per_request else ""), file=out)
    if wasm and wasm.rps and workers:
        print(f"workers: --workers {WORKERS} / one process = {workers.rps / wasm.rps:.2f}x req/s "
              f"({os.cpu_count()} CPUs shared with the load generator)", file=out)
    if wasm and h11 and native and wasm.cpu_us_per_request:
        # Requests per server CPU-second: what the server costs, whatever else loads the machine.
        print(f"per server CPU-second: asyncwasm {h11.cpu_us_per_request / wasm.cpu_us_per_request:.2f}x h11, "
              f"{100 * native.cpu_us_per_request / wasm.cpu_us_per_request:.0f}% of native-poll", file=out)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    parser.add_argument("--tool", choices=["auto", "wrk", "trio"], default="auto")
    parser.add_argument("--concurrency", "-c", type=int, default=32, help="keep-alive connections (default 32)")
    parser.add_argument("--instances", type=int, default=None,
                        help="asyncwasm instances / native processes (default: = concurrency)")
    parser.add_argument("--duration", "-d", type=float, default=5.0, help="seconds per target (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring (default 1)")
    parser.add_argument("--echo", type=int, metavar="BYTES", help="POST /echo with a body of BYTES instead of GET /")
    parser.add_argument("--rate", type=float, metavar="REQ_PER_S",
                        help="offered load instead of as fast as possible: each connection pauses "
                             "connections/rate before each request (wrk only; latency then is the "
                             "server's answer time below saturation, not queueing in the load generator)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every target this many times, interleaved; report the median (default 1)")
    parser.add_argument("--quick", action="store_true", help="2 s per target, 0.5 s warm-up")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 2.0, 0.5
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "trio"
    elif tool == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), use --tool trio")
    if args.rate is not None and (tool != "wrk" or not args.rate > 0):
        parser.error("--rate needs wrk and a rate > 0")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    for target in targets:
        if target not in TARGETS:
            parser.error(f"unknown target {target!r} (known: {', '.join(TARGETS)})")
    print(f"# {tool}, {args.concurrency} keep-alive connections, {args.duration:g} s per target, "
          f"{'GET /' if args.echo is None else f'POST /echo {args.echo} B'}, {os.cpu_count()} CPUs"
          + (f", offered {args.rate:g} req/s (a {rate_delay_ms(args.concurrency, args.rate)} ms pause "
             "per connection)" if args.rate is not None else "")
          + f", load average {os.getloadavg()[0]:.1f}", flush=True)
    rounds: dict[str, list[Result]] = {target: [] for target in targets}
    for round_ in range(args.rounds):
        for target in targets:  # interleaved, so a noisy minute hits every target alike
            try:
                with start_target(target, args) as port:
                    check_target(port, args.echo, _is_tls(target))
                    result = (run_wrk if tool == "wrk" else run_trio)(target, port, args)
            except Exception as exc:  # one broken target must not hide the others
                result = Result(target, tool, note=f"failed: {exc}".splitlines()[0][:200])
            print(f"  round {round_ + 1}: {target}: {result.rps:.0f} req/s, p99 {result.p99_ms:.3f} ms "
                  f"{result.note}", flush=True)
            rounds[target].append(result)
    results = [median_result(rounds[target]) for target in targets]
    print()
    print_table(results)
    print(f"load average after the run: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0 if all(not r.note.startswith("failed") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
