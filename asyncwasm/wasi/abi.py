"""WASI preview1 ABI: enums, flags and struct layouts, exactly as the witx says.

Sources (checked, not guessed):
- https://github.com/WebAssembly/WASI/blob/main/legacy/preview1/witx/typenames.witx
  (enum order = numeric values, flag order = bit numbers)
- https://github.com/WebAssembly/WASI/blob/main/legacy/preview1/docs.md
  (sizes, alignments and member offsets)
- wasi-libc ``wasi/api.h`` ``_Static_assert``s (same offsets, for wasm32)

Rule: every byte layout the host reads or writes is a ``struct.Struct`` here,
little-endian, with explicit padding so that ``.size`` equals the witx size.
The tests assert each size and offset against the table in its docstring.

Errors: host functions translate failures into an :class:`Errno` at one
boundary (see :mod:`asyncwasm.wasi.decl`); code below that boundary raises
:class:`WasiError` or lets an :class:`OSError` through.
"""

from __future__ import annotations

import enum
import errno as _os_errno
import struct

SPEC = "https://github.com/WebAssembly/WASI/blob/main/legacy/preview1/docs.md"


class Errno(enum.IntEnum):
    """``$errno`` (u16). Values are the witx enum order."""

    SUCCESS = 0
    TOOBIG = 1  # witx "2big" (E2BIG)
    ACCES = 2
    ADDRINUSE = 3
    ADDRNOTAVAIL = 4
    AFNOSUPPORT = 5
    AGAIN = 6
    ALREADY = 7
    BADF = 8
    BADMSG = 9
    BUSY = 10
    CANCELED = 11
    CHILD = 12
    CONNABORTED = 13
    CONNREFUSED = 14
    CONNRESET = 15
    DEADLK = 16
    DESTADDRREQ = 17
    DOM = 18
    DQUOT = 19
    EXIST = 20
    FAULT = 21
    FBIG = 22
    HOSTUNREACH = 23
    IDRM = 24
    ILSEQ = 25
    INPROGRESS = 26
    INTR = 27
    INVAL = 28
    IO = 29
    ISCONN = 30
    ISDIR = 31
    LOOP = 32
    MFILE = 33
    MLINK = 34
    MSGSIZE = 35
    MULTIHOP = 36
    NAMETOOLONG = 37
    NETDOWN = 38
    NETRESET = 39
    NETUNREACH = 40
    NFILE = 41
    NOBUFS = 42
    NODEV = 43
    NOENT = 44
    NOEXEC = 45
    NOLCK = 46
    NOLINK = 47
    NOMEM = 48
    NOMSG = 49
    NOPROTOOPT = 50
    NOSPC = 51
    NOSYS = 52
    NOTCONN = 53
    NOTDIR = 54
    NOTEMPTY = 55
    NOTRECOVERABLE = 56
    NOTSOCK = 57
    NOTSUP = 58
    NOTTY = 59
    NXIO = 60
    OVERFLOW = 61
    OWNERDEAD = 62
    PERM = 63
    PIPE = 64
    PROTO = 65
    PROTONOSUPPORT = 66
    PROTOTYPE = 67
    RANGE = 68
    ROFS = 69
    SPIPE = 70
    SRCH = 71
    STALE = 72
    TIMEDOUT = 73
    TXTBSY = 74
    XDEV = 75
    NOTCAPABLE = 76


class WasiError(Exception):
    """Raised below the host-function boundary to return ``errno`` to the guest."""

    def __init__(self, errno: Errno) -> None:
        self.errno = Errno(errno)
        super().__init__(self.errno.name)


def _build_host_errno_table() -> dict[int, Errno]:
    table: dict[int, Errno] = {}
    for member in Errno:
        host_name = "E2BIG" if member is Errno.TOOBIG else "E" + member.name
        value = getattr(_os_errno, host_name, None)
        if value is not None and member is not Errno.SUCCESS:
            table.setdefault(value, member)
    # Aliases whose WASI spelling differs from the host's.
    table[_os_errno.EWOULDBLOCK] = Errno.AGAIN
    table[_os_errno.EOPNOTSUPP] = Errno.NOTSUP
    return table


_HOST_ERRNO = _build_host_errno_table()


def errno_from_oserror(exc: OSError) -> Errno:
    """The WASI errno for a host ``OSError`` (``IO`` when there is no equivalent)."""
    return _HOST_ERRNO.get(exc.errno or 0, Errno.IO)


class Rights(enum.IntFlag):
    """``$rights`` (u64 flags). Bit n is the n-th flag of the witx."""

    FD_DATASYNC = 1 << 0
    FD_READ = 1 << 1
    FD_SEEK = 1 << 2
    FD_FDSTAT_SET_FLAGS = 1 << 3
    FD_SYNC = 1 << 4
    FD_TELL = 1 << 5
    FD_WRITE = 1 << 6
    FD_ADVISE = 1 << 7
    FD_ALLOCATE = 1 << 8
    PATH_CREATE_DIRECTORY = 1 << 9
    PATH_CREATE_FILE = 1 << 10
    PATH_LINK_SOURCE = 1 << 11
    PATH_LINK_TARGET = 1 << 12
    PATH_OPEN = 1 << 13
    FD_READDIR = 1 << 14
    PATH_READLINK = 1 << 15
    PATH_RENAME_SOURCE = 1 << 16
    PATH_RENAME_TARGET = 1 << 17
    PATH_FILESTAT_GET = 1 << 18
    PATH_FILESTAT_SET_SIZE = 1 << 19
    PATH_FILESTAT_SET_TIMES = 1 << 20
    FD_FILESTAT_GET = 1 << 21
    FD_FILESTAT_SET_SIZE = 1 << 22
    FD_FILESTAT_SET_TIMES = 1 << 23
    PATH_SYMLINK = 1 << 24
    PATH_REMOVE_DIRECTORY = 1 << 25
    PATH_UNLINK_FILE = 1 << 26
    POLL_FD_READWRITE = 1 << 27
    SOCK_SHUTDOWN = 1 << 28
    SOCK_ACCEPT = 1 << 29


R = Rights
#: Every defined right.
RIGHTS_ALL = (1 << 30) - 1
#: Rights that make sense on a regular file.
RIGHTS_REGULAR_FILE = int(
    R.FD_DATASYNC | R.FD_READ | R.FD_SEEK | R.FD_FDSTAT_SET_FLAGS | R.FD_SYNC | R.FD_TELL | R.FD_WRITE
    | R.FD_ADVISE | R.FD_ALLOCATE | R.FD_FILESTAT_GET | R.FD_FILESTAT_SET_SIZE | R.FD_FILESTAT_SET_TIMES
    | R.POLL_FD_READWRITE
)
#: Rights that make sense on a directory.
RIGHTS_DIRECTORY = int(
    R.FD_FDSTAT_SET_FLAGS | R.FD_SYNC | R.FD_ADVISE | R.PATH_CREATE_DIRECTORY | R.PATH_CREATE_FILE
    | R.PATH_LINK_SOURCE | R.PATH_LINK_TARGET | R.PATH_OPEN | R.FD_READDIR | R.PATH_READLINK
    | R.PATH_RENAME_SOURCE | R.PATH_RENAME_TARGET | R.PATH_FILESTAT_GET | R.PATH_FILESTAT_SET_SIZE
    | R.PATH_FILESTAT_SET_TIMES | R.FD_FILESTAT_GET | R.FD_FILESTAT_SET_TIMES | R.PATH_SYMLINK
    | R.PATH_REMOVE_DIRECTORY | R.PATH_UNLINK_FILE | R.POLL_FD_READWRITE
)
#: What a directory may hand down to what is opened through it.
RIGHTS_DIRECTORY_INHERITING = RIGHTS_DIRECTORY | RIGHTS_REGULAR_FILE
#: Terminals, pipes and in-memory streams: read/write but no seeking.
RIGHTS_STREAM = int(R.FD_READ | R.FD_WRITE | R.FD_FDSTAT_SET_FLAGS | R.FD_FILESTAT_GET | R.POLL_FD_READWRITE)
#: Sockets (the networking issue adds SOCK_ACCEPT on listeners).
RIGHTS_SOCKET = RIGHTS_STREAM | int(R.SOCK_SHUTDOWN)
#: Rights removed from a read-only preopen (and everything opened through it).
#: Link/rename *sources* are included: linking a file out of a read-only
#: directory into a writable one would otherwise make it writable.
RIGHTS_WRITING = int(
    R.FD_DATASYNC | R.FD_WRITE | R.FD_ALLOCATE | R.FD_FILESTAT_SET_SIZE | R.FD_FILESTAT_SET_TIMES
    | R.PATH_CREATE_DIRECTORY | R.PATH_CREATE_FILE | R.PATH_LINK_SOURCE | R.PATH_LINK_TARGET
    | R.PATH_RENAME_SOURCE | R.PATH_RENAME_TARGET | R.PATH_FILESTAT_SET_SIZE | R.PATH_FILESTAT_SET_TIMES
    | R.PATH_SYMLINK | R.PATH_REMOVE_DIRECTORY | R.PATH_UNLINK_FILE
)
del R


class Filetype(enum.IntEnum):
    """``$filetype`` (u8)."""

    UNKNOWN = 0
    BLOCK_DEVICE = 1
    CHARACTER_DEVICE = 2
    DIRECTORY = 3
    REGULAR_FILE = 4
    SOCKET_DGRAM = 5
    SOCKET_STREAM = 6
    SYMBOLIC_LINK = 7


class Fdflags(enum.IntFlag):
    """``$fdflags`` (u16)."""

    APPEND = 1 << 0
    DSYNC = 1 << 1
    NONBLOCK = 1 << 2
    RSYNC = 1 << 3
    SYNC = 1 << 4


FDFLAGS_ALL = 0x1F


class Oflags(enum.IntFlag):
    """``$oflags`` (u16), for ``path_open``."""

    CREAT = 1 << 0
    DIRECTORY = 1 << 1
    EXCL = 1 << 2
    TRUNC = 1 << 3


OFLAGS_ALL = 0xF


class Lookupflags(enum.IntFlag):
    """``$lookupflags`` (u32)."""

    SYMLINK_FOLLOW = 1 << 0


class Fstflags(enum.IntFlag):
    """``$fstflags`` (u16), for ``*_filestat_set_times``."""

    ATIM = 1 << 0
    ATIM_NOW = 1 << 1
    MTIM = 1 << 2
    MTIM_NOW = 1 << 3


class Whence(enum.IntEnum):
    """``$whence`` (u8); equal to the host's SEEK_SET/CUR/END."""

    SET = 0
    CUR = 1
    END = 2


class Advice(enum.IntEnum):
    """``$advice`` (u8)."""

    NORMAL = 0
    SEQUENTIAL = 1
    RANDOM = 2
    WILLNEED = 3
    DONTNEED = 4
    NOREUSE = 5


class Clockid(enum.IntEnum):
    """``$clockid`` (u32)."""

    REALTIME = 0
    MONOTONIC = 1
    PROCESS_CPUTIME_ID = 2
    THREAD_CPUTIME_ID = 3


class Eventtype(enum.IntEnum):
    """``$eventtype`` (u8): subscription union tag and event type."""

    CLOCK = 0
    FD_READ = 1
    FD_WRITE = 2


class Eventrwflags(enum.IntFlag):
    """``$eventrwflags`` (u16)."""

    FD_READWRITE_HANGUP = 1 << 0


class Subclockflags(enum.IntFlag):
    """``$subclockflags`` (u16)."""

    SUBSCRIPTION_CLOCK_ABSTIME = 1 << 0


class Signal(enum.IntEnum):
    """``$signal`` (u8), for ``proc_raise``."""

    NONE = 0
    HUP = 1
    INT = 2
    QUIT = 3
    ILL = 4
    TRAP = 5
    ABRT = 6
    BUS = 7
    FPE = 8
    KILL = 9
    USR1 = 10
    SEGV = 11
    USR2 = 12
    PIPE = 13
    ALRM = 14
    TERM = 15
    CHLD = 16
    CONT = 17
    STOP = 18
    TSTP = 19
    TTIN = 20
    TTOU = 21
    URG = 22
    XCPU = 23
    XFSZ = 24
    VTALRM = 25
    PROF = 26
    WINCH = 27
    POLL = 28
    PWR = 29
    SYS = 30


class Riflags(enum.IntFlag):
    """``$riflags`` (u16), for ``sock_recv``."""

    RECV_PEEK = 1 << 0
    RECV_WAITALL = 1 << 1


class Roflags(enum.IntFlag):
    """``$roflags`` (u16), written by ``sock_recv``."""

    RECV_DATA_TRUNCATED = 1 << 0


class Sdflags(enum.IntFlag):
    """``$sdflags`` (u8), for ``sock_shutdown``."""

    RD = 1 << 0
    WR = 1 << 1


class Preopentype(enum.IntEnum):
    """``$preopentype`` (u8)."""

    DIR = 0


# ---------------------------------------------------------------------------
# Struct layouts (wasm32, little-endian). "x" bytes are padding.
# ---------------------------------------------------------------------------

#: ``$iovec`` / ``$ciovec``, size 8 align 4: buf u32 @0, buf_len u32 @4.
IOVEC = struct.Struct("<II")

#: ``$fdstat``, size 24 align 8: fs_filetype u8 @0, fs_flags u16 @2,
#: fs_rights_base u64 @8, fs_rights_inheriting u64 @16.
FDSTAT = struct.Struct("<BxHxxxxQQ")

#: ``$filestat``, size 64 align 8: dev u64 @0, ino u64 @8, filetype u8 @16,
#: nlink u64 @24, size u64 @32, atim u64 @40, mtim u64 @48, ctim u64 @56.
FILESTAT = struct.Struct("<QQB7xQQQQQ")

#: ``$dirent`` header, size 24 align 8: d_next u64 @0, d_ino u64 @8,
#: d_namlen u32 @16, d_type u8 @20; the name follows the header.
DIRENT = struct.Struct("<QQIB3x")

#: ``$prestat``, size 8 align 4: tag u8 @0 (preopentype), pr_name_len u32 @4.
PRESTAT = struct.Struct("<B3xI")

#: ``$subscription``, size 48 align 8: userdata u64 @0, u.tag u8 @8, the
#: union payload at @16. This struct reads the common head.
SUBSCRIPTION_HEAD = struct.Struct("<QB")
SUBSCRIPTION_SIZE = 48
#: ``$subscription_clock`` at subscription offset 16, size 32: id u32 @16,
#: timeout u64 @24, precision u64 @32, flags u16 @40.
SUBSCRIPTION_CLOCK = struct.Struct("<I4xQQH")
#: ``$subscription_fd_readwrite`` at subscription offset 16: file_descriptor u32 @16.
SUBSCRIPTION_FD = struct.Struct("<I")
SUBSCRIPTION_PAYLOAD_OFFSET = 16

#: ``$event``, size 32 align 8: userdata u64 @0, error u16 @8, type u8 @10,
#: fd_readwrite.nbytes u64 @16, fd_readwrite.flags u16 @24.
EVENT = struct.Struct("<QHB5xQH6x")

U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
U16 = struct.Struct("<H")

#: Largest value of a host ``off_t``: offsets and sizes above it are INVAL/FBIG.
MAX_OFFSET = (1 << 63) - 1
#: Most iovecs one call may pass (the host's IOV_MAX).
IOV_MAX = 1024


# ---------------------------------------------------------------------------
# Sockets: rights of socket kinds, and WasmEdge's socket extension ABI.
# Sources: WasmEdge ``thirdparty/wasi/api.hpp`` (enums, struct static_asserts)
# and ``include/host/wasi/environ.h`` (WasiAddrStorage); see
# docs/sockets-abi.md sections 3 and 4.
# ---------------------------------------------------------------------------

#: A listening socket (or one the guest opened and may still listen on).
RIGHTS_SOCKET_LISTENER = RIGHTS_SOCKET | int(Rights.SOCK_ACCEPT)


class AddressFamily(enum.IntEnum):
    """WasmEdge ``__wasi_address_family_t`` (u8)."""

    UNSPEC = 0
    INET4 = 1
    INET6 = 2
    AF_UNIX = 3


class SockType(enum.IntEnum):
    """WasmEdge ``__wasi_sock_type_t`` (u8)."""

    ANY = 0
    DGRAM = 1
    STREAM = 2


class Protocol(enum.IntEnum):
    """WasmEdge ``__wasi_protocol_t`` (u8)."""

    IP = 0
    TCP = 1
    UDP = 2


class SockOptLevel(enum.IntEnum):
    """WasmEdge ``__wasi_sock_opt_level_t``: only SOL_SOCKET."""

    SOL_SOCKET = 0


class SockOpt(enum.IntEnum):
    """WasmEdge ``__wasi_sock_opt_so_t``: SOL_SOCKET option names."""

    REUSEADDR = 0
    TYPE = 1
    ERROR = 2
    DONTROUTE = 3
    BROADCAST = 4
    SNDBUF = 5
    RCVBUF = 6
    KEEPALIVE = 7
    OOBINLINE = 8
    LINGER = 9
    RCVLOWAT = 10
    RCVTIMEO = 11
    SNDTIMEO = 12
    ACCEPTCONN = 13
    BINDTODEVICE = 14


class AiFlags(enum.IntFlag):
    """WasmEdge ``__wasi_aiflags_t`` (u16 bit flags, as the host reads them)."""

    AI_PASSIVE = 1 << 0
    AI_CANONNAME = 1 << 1
    AI_NUMERICHOST = 1 << 2
    AI_NUMERICSERV = 1 << 3
    AI_V4MAPPED = 1 << 4
    AI_ALL = 1 << 5
    AI_ADDRCONFIG = 1 << 6


AIFLAGS_ALL = 0x7F


class WasmEdgeErrno(enum.IntEnum):
    """WasmEdge's errno extensions for ``sock_getaddrinfo`` (after NOTCAPABLE = 76).
    Kept apart from :class:`Errno`, which is exactly the witx enum."""

    AIADDRFAMILY = 77
    AIAGAIN = 78
    AIBADFLAG = 79
    AIFAIL = 80
    AIFAMILY = 81
    AIMEMORY = 82
    AINODATA = 83
    AINONAME = 84
    AISERVICE = 85
    AISOCKTYPE = 86
    AISYSTEM = 87


#: ``__wasi_address_t`` (WasiAddress), size 8 align 4: buf u32 @0, buf_len u32 @4.
#: ``buf_len`` 4 = IPv4 bytes, 16 = IPv6 bytes, 128 = a WasiAddrStorage (V2).
WASI_ADDRESS = struct.Struct("<II")
#: ``WasiAddrStorage``, 128 bytes: family u16 @0 (AddressFamily), address bytes @2.
ADDR_STORAGE_SIZE = 128
ADDR_STORAGE_FAMILY = struct.Struct("<H")
ADDR_STORAGE_ADDRESS_OFFSET = 2
#: ``__wasi_sockaddr_t``, size 12 align 4: sa_family u8 @0, sa_data_len u32 @4, sa_data u32 @8.
WASI_SOCKADDR = struct.Struct("<B3xII")
#: ``__wasi_addrinfo_t``, size 28 align 4: ai_flags u16 @0, ai_family u8 @2,
#: ai_socktype u8 @3, ai_protocol u8 @4, ai_addrlen u32 @8, ai_addr u32 @12,
#: ai_canonname u32 @16, ai_canonname_len u32 @20, ai_next u32 @24.
WASI_ADDRINFO = struct.Struct("<HBBB3xIIIII")
#: The leading fields of ``__wasi_addrinfo_t`` the host fills in (flags..protocol).
WASI_ADDRINFO_HEAD = struct.Struct("<HBBB")
WASI_ADDRINFO_ADDRLEN_OFFSET = 8
WASI_ADDRINFO_CANONNAME_LEN_OFFSET = 20
