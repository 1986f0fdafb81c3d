"""Several worker processes on one address, each client always served by the same worker.

SO_REUSEPORT alone spreads datagrams by a hash that includes the source port, and a client
picks a fresh source port per query: its queries would land on every worker, splitting the
per-client state (rate limit, exfiltration evidence) N ways. A classic BPF program attached to
the group (SO_ATTACH_REUSEPORT_CBPF, Linux 4.5+) picks the socket from the source address only.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SO_REUSEPORT = getattr(socket, "SO_REUSEPORT", 15)
SO_ATTACH_REUSEPORT_CBPF = 51  # include/uapi/asm-generic/socket.h

# Classic BPF opcodes (include/uapi/linux/filter.h).
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_ALU_MOD_K = 0x94  # BPF_ALU | BPF_MOD | BPF_K
_RET_A = 0x16  # BPF_RET | BPF_A
_SKF_NET_OFF = -0x100000  # offsets from the network header, whatever the payload offset
_INSN = struct.Struct("=HBBI")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def steering_program(family: int, workers: int) -> bytes:
    """cBPF: socket index = (last 32 bits of the source address) mod workers."""
    # IPv4 source address at network offset 12; IPv6 source at 8, its last word at 20.
    offset = 12 if family == socket.AF_INET else 20
    insns = [
        (_LD_W_ABS, 0, 0, (_SKF_NET_OFF + offset) & 0xFFFFFFFF),
        (_ALU_MOD_K, 0, 0, workers),
        (_RET_A, 0, 0, 0),
    ]
    return b"".join(_INSN.pack(*i) for i in insns)


def attach_steering(sock: socket.socket, workers: int) -> None:
    """Attach the program to ``sock``'s reuseport group; OSError where the kernel lacks it."""
    prog = steering_program(sock.family, workers)
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = _SockFprog(len(prog) // _INSN.size, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes(fprog))
