"""Hosting Wasm servers: ``asyncwasm serve`` and its parts.

    >>> from asyncwasm.serve import Handoff, Server, TlsConfig
    >>> tls = TlsConfig("chain.pem", "key.pem")           # optional: TLS on every listener
    >>> handoff = Handoff.bind(["127.0.0.1:8443"], tls=tls)
    >>> server = Server(asyncwasm.Module.from_file("app.wasm"), handoff, instances=8)
    >>> await server.run()            # until server.shutdown()

- :mod:`.handoff`: one host accept loop handing connections to idle instances;
- :mod:`.supervisor`: N instances kept running, restarted with back-off;
- :mod:`.server`: the two together, with graceful shutdown;
- :mod:`.tls`, :mod:`.tls_connection`: TLS termination (pyOpenSSL), a
  connection the guest sees as one plaintext socket;
- :mod:`.metrics`: Prometheus metrics and the health check;
- :mod:`.workers`: ``--workers N``, worker processes on shared listeners;
- :mod:`.embedded`: the default module (netmods' http_server);
- :mod:`.cli`: the ``asyncwasm serve`` command.
"""

from .handoff import Handoff
from .server import Server
from .supervisor import Backoff, Supervisor
from .tls import TlsConfig

__all__ = ["Handoff", "Server", "Supervisor", "Backoff", "TlsConfig"]
