"""A packet capture that owes nothing to the harness: the TCP segments a service port sends.

`WireCapture(interface, port)` opens an AF_PACKET socket on one interface (the run's bridge),
with a classic BPF filter so the kernel hands over only IPv4 TCP segments whose source port is
`port` (the replicas' answers), and kernel receive timestamps (SO_TIMESTAMPNS: the instant the
packet crossed the interface, whatever the reader's scheduling). It records, per segment: the
time, the source address, the TCP flags and whether the payload starts an HTTP response.

    with WireCapture("br-1a2b3c4d5e6f", 8080) as wire:
        ...                                     # the run
    wire.responses("172.30.5.3")                # instants web-2 sent an HTTP response

Needs root (CAP_NET_RAW). Linux only.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import threading
from dataclasses import dataclass
from types import TracebackType

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
RECEIVE_BUFFER = 16 * 1024 * 1024
TCP_RST = 0x04
TCP_SYN = 0x02
TCP_ACK = 0x10


def _filter(port: int) -> list[tuple[int, int, int, int]]:
    """cBPF: accept IPv4, TCP, unfragmented, source port `port` (tcpdump's 'tcp src port')."""
    return [
        (0x28, 0, 0, 12),  # ldh [12]                 ethertype
        (0x15, 0, 8, 0x0800),  # jeq IPv4, else drop
        (0x30, 0, 0, 23),  # ldb [23]                 IP protocol
        (0x15, 0, 6, 6),  # jeq TCP, else drop
        (0x28, 0, 0, 20),  # ldh [20]                 fragment offset
        (0x45, 4, 0, 0x1FFF),  # jset: a fragment, drop
        (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf)        IP header length
        (0x48, 0, 0, 14),  # ldh [x+14]               TCP source port
        (0x15, 0, 1, port),  # jeq port, else drop
        (0x06, 0, 0, 0x40000),  # accept
        (0x06, 0, 0, 0),  # drop
    ]


@dataclass(frozen=True)
class Segment:
    time_ns: int
    source: str
    destination: str
    flags: int
    http_response: bool  # the payload starts with "HTTP/"


class WireCapture:
    """Captures on a thread from start() to stop(); `segments` once stopped."""

    def __init__(self, interface: str, port: int) -> None:
        self.interface = interface
        self.port = port
        self.segments: list[Segment] = []
        self.dropped = 0
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name=f"wire-{interface}", daemon=True)
        self._program: ctypes.Array[ctypes.c_char] | None = None

    def __enter__(self) -> WireCapture:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> WireCapture:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self._attach_filter(sock)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind((self.interface, 0))
        sock.settimeout(0.2)
        self._sock = sock
        self._thread.start()
        return self

    def _attach_filter(self, sock: socket.socket) -> None:
        code = b"".join(struct.pack("HBBI", *op) for op in _filter(self.port))
        self._program = ctypes.create_string_buffer(code)  # must outlive the setsockopt call
        address = ctypes.addressof(self._program)
        program = struct.pack("HL", len(code) // 8, address)  # struct sock_fprog
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)

    def _run(self) -> None:
        assert self._sock is not None
        ancillary = socket.CMSG_SPACE(16)
        while not self._stop.is_set():
            try:
                data, cmsgs, _flags, _address = self._sock.recvmsg(2048, ancillary)
            except TimeoutError:
                continue
            except OSError:
                return
            segment = _parse(data, _timestamp(cmsgs))
            if segment is None:
                self.dropped += 1
            else:
                self.segments.append(segment)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def responses(self, source: str) -> list[int]:
        """Instants `source` sent the first segment of an HTTP response, in order."""
        return sorted(s.time_ns for s in self.segments if s.source == source and s.http_response)

    def resets(self, source: str) -> list[int]:
        return sorted(s.time_ns for s in self.segments if s.source == source and s.flags & TCP_RST)


def _timestamp(cmsgs: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in cmsgs:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


def _parse(frame: bytes, time_ns: int | None) -> Segment | None:
    if time_ns is None or len(frame) < 14 + 20 + 20:
        return None
    ip_length = (frame[14] & 0x0F) * 4
    tcp = 14 + ip_length
    if len(frame) < tcp + 20:
        return None
    payload = tcp + (frame[tcp + 12] >> 4) * 4
    return Segment(
        time_ns=time_ns,
        source=socket.inet_ntoa(frame[26:30]),
        destination=socket.inet_ntoa(frame[30:34]),
        flags=frame[tcp + 13],
        http_response=frame[payload : payload + 5] == b"HTTP/",
    )
