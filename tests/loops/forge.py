"""Sends one UDP datagram over IPv4 with a forged source address.

    python3 forge.py SRC_IP SRC_PORT DST_IP DST_PORT PAYLOAD

Needs root (a raw socket). The kernel fills in the IP header's checksum;
the UDP checksum is left at 0, which means "none" over IPv4.
"""

import socket
import struct
import sys

src, sport, dst, dport, payload = sys.argv[1:6]
data = payload.encode()
udp = struct.pack("!HHHH", int(sport), int(dport), 8 + len(data), 0) + data
ip = struct.pack(
    "!BBHHHBBH4s4s",
    0x45,  # IPv4, a 20-byte header
    0,
    20 + len(udp),
    0,
    0x4000,  # don't fragment
    64,
    socket.IPPROTO_UDP,
    0,
    socket.inet_aton(src),
    socket.inet_aton(dst),
)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
raw.sendto(ip + udp, (dst, 0))
