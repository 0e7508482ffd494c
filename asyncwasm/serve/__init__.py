"""Hosting Wasm servers: ``asyncwasm serve`` and its parts.

    >>> from asyncwasm.serve import Handoff, Server, TlsConfig
    >>> tls = TlsConfig("chain.pem", "key.pem")           # optional: TLS on every listener
    >>> handoff = Handoff.bind(["127.0.0.1:8443"], tls=tls)
    >>> server = Server(asyncwasm.Module.from_file("app.wasm"), handoff, instances=8)
    >>> await server.run()            # until server.shutdown()

Hot reload: a :class:`ModuleSource` (a path or URL, trusted signers, watch
or poll) instead of a module; each new version is swapped in without
dropping a connection:

    >>> source = ModuleSource("https://example.org/app.wasm", trust_keys=["ops.pub.pem"], poll=60)
    >>> server = Server(source, handoff, instances=8, log=print)

- :mod:`.handoff`: one host accept loop handing connections to idle instances;
- :mod:`.supervisor`: N instances kept running, restarted with back-off;
- :mod:`.generation`: one module version's instances (a swap runs two);
- :mod:`.server`: the two together, with zero-drop swaps and graceful shutdown;
- :mod:`.source`, :mod:`.fetch`, :mod:`.reload`: module delivery (a file
  or an http(s) URL, signatures, watch/poll, reloads);
- :mod:`.tls`, :mod:`.tls_connection`: TLS termination (pyOpenSSL), a
  connection the guest sees as one plaintext socket;
- :mod:`.metrics`: Prometheus metrics and the health check;
- :mod:`.workers`: ``--workers N``, worker processes on shared listeners;
- :mod:`.embedded`: the default module (netmods' http_server);
- :mod:`.cli`: the ``asyncwasm serve`` command.

Handler mode (CGI/1.1: a fresh instance of a WASI command per request):

    >>> router = Router([Route("/api/...", "api.wasm", timeout=5.0)])   # or load_routes("routes.toml")
    >>> server = HandlerServer(router)
    >>> listeners = await nursery.start(server.serve_tcp, 8080, "127.0.0.1")

- :mod:`.router`: routes (``Route``, ``Router``, ``load_routes``);
- :mod:`.cgi`: the sans-IO CGI adapter (environment; stdout -> response);
- :mod:`.http_conn`: one HTTP/1.1 connection (h11) over any trio Stream;
- :mod:`.handler`: the gateway, a fresh instance per request;
- :mod:`.handler_server`: listeners, connections, counters, shutdown;
- :mod:`.access_log`: common/combined access log lines.
"""

from .handler_server import HandlerServer, HandlerStatistics
from .handoff import Handoff
from .router import Route, RouteError, Router, load_routes
from .server import Server, SwapFailed
from .source import ModuleSource, Refused, Version
from .supervisor import Backoff, Supervisor
from .tls import TlsConfig

__all__ = ["Handoff", "Server", "SwapFailed", "Supervisor", "Backoff", "TlsConfig", "ModuleSource", "Version", "Refused"]
__all__ += ["Router", "Route", "RouteError", "load_routes", "HandlerServer", "HandlerStatistics"]
