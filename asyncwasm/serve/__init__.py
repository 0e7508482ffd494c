"""Hosting Wasm servers: ``asyncwasm serve`` and its parts.

    >>> from asyncwasm.serve import Handoff, Server
    >>> handoff = Handoff.bind(["127.0.0.1:8080"])
    >>> server = Server(asyncwasm.Module.from_file("app.wasm"), handoff, instances=8)
    >>> await server.run()            # until server.shutdown()

- :mod:`.handoff`: one host accept loop handing connections to idle instances;
- :mod:`.supervisor`: N instances kept running, restarted with back-off;
- :mod:`.server`: the two together, with graceful shutdown;
- :mod:`.embedded`: the default module (netmods' http_server);
- :mod:`.cli`: the ``asyncwasm serve`` command.
"""

from .handoff import Handoff
from .server import Server
from .supervisor import Backoff, Supervisor

__all__ = ["Handoff", "Server", "Supervisor", "Backoff"]
