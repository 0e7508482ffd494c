"""asyncwasm.wasi: the WASI preview1 host (``wasi_snapshot_preview1``).

    >>> from asyncwasm.wasi import WasiConfig, WasiContext
    >>> out = bytearray()
    >>> config = WasiConfig(argv=["hello"], stdout=out)
    >>> config.preopen_dir("/tmp/sandbox", "/data")
    >>> ctx = WasiContext(config)                   # one per instance
    >>> imports = ctx.imports()                     # name -> (FuncType, callable)

Every function of the preview1 witx is provided (see :data:`FUNCTIONS`).
Files are reachable only beneath the preopened directories; calls that
would block (stdin or a pipe without data, ``poll_oneoff`` sleeping,
``sched_yield``) suspend the guest's task instead of the thread.

Modules: ``abi`` (errno, rights, layouts), ``config``, ``context``, one
module per function family (``args``, ``environ``, ``clock``, ``random``,
``proc``, ``sched``, ``fs``, ``paths``, ``poll``, ``sock`` (preview1 sockets),
``wasmedge_sock`` (WasmEdge's socket extension, chosen per import signature by
``WasiContext.import_for``)), the network side ``sockets`` (trio-backed socket
entries, pre-opened listeners) and ``netpolicy`` (what a guest may bind,
listen on, connect to, resolve), and the machinery ``decl`` (functions as
data), ``later``, ``memory``, ``fdtable``, ``stdio``, ``sandbox``.
"""

from .abi import Errno, Filetype, Rights
from .config import Preopen, WasiConfig
from .context import WASI_MODULE, WasiContext
from .decl import REGISTRY as FUNCTIONS
from .decl import format_call
from .netpolicy import NetPolicy

__all__ = ["WasiConfig", "WasiContext", "Preopen", "Errno", "Rights", "Filetype", "FUNCTIONS", "WASI_MODULE",
           "format_call", "NetPolicy"]
