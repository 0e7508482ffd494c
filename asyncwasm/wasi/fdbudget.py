"""FdBudget: how many host fds the guests of one process may open between them.

    >>> budget = FdBudget(512)                       # or process_fd_budget(): every context's default
    >>> config = WasiConfig(fd_budget=budget)
    >>> budget.held, budget.refused                  # what guests hold now; opens refused so far
    (0, 0)

Rule: what a guest opens by itself (``path_open``, ``sock_open``, and
``sock_accept`` on a listener it made itself) takes a slot and gives it
back when the fd is closed; connections on a listener the host pre-opened
take none. Those are what the process serves, and the budget exists so
that guests opening files or sockets in a loop cannot use up the fds the
host's accepts need: with the default (half the process's open-file
limit), the other half stays for connections, listeners and the host.

Rule: two limits, two errnos. A guest's own fd table stops at
``WasiConfig.max_fds`` with ``MFILE`` (the guest's "process" limit); the
budget refuses with ``NFILE`` ("too many files open in the system": the
host's). Both are checked before anything is opened, so a refused
``sock_accept`` leaves the connection queued. Both are counted, per
context (``FdTable.refused``) and here, so the host can log who hit which.
"""

from __future__ import annotations

from typing import Optional

from ..hostnet import fd_limit
from .abi import Errno, WasiError

__all__ = ["FdBudget", "process_fd_budget"]


class FdBudget:
    """Slots for host fds that guests open (see the module docstring).

    ``max_fds``: the slots; None means half the process's soft open-file
    limit, read each time it is consulted (so it follows a limit raised
    after start, as ``asyncwasm serve`` and ``run`` raise it)."""

    def __init__(self, max_fds: Optional[int] = None) -> None:
        if max_fds is not None and (isinstance(max_fds, bool) or not isinstance(max_fds, int) or max_fds < 0):
            raise ValueError(f"max_fds must be an int >= 0 or None, not {max_fds!r}")
        self._max_fds = max_fds
        self.held = 0
        self.refused = 0

    @property
    def max_fds(self) -> int:
        return self._max_fds if self._max_fds is not None else fd_limit() // 2

    def check(self) -> None:
        """``NFILE`` (counted) unless a slot is free."""
        if self.held >= self.max_fds:
            self.refused += 1
            raise WasiError(Errno.NFILE)

    def take(self) -> None:
        """Take a slot (``NFILE`` when none is free)."""
        self.check()
        self.held += 1

    def give(self) -> None:
        """Give a slot back (its fd was closed)."""
        self.held -= 1

    def __repr__(self) -> str:
        return f"<FdBudget {self.held} of {self.max_fds} held, {self.refused} refused>"


_PROCESS_BUDGET = FdBudget()


def process_fd_budget() -> FdBudget:
    """The budget every :class:`~asyncwasm.wasi.WasiContext` of this process
    shares unless its config names another (``WasiConfig.fd_budget``)."""
    return _PROCESS_BUDGET
