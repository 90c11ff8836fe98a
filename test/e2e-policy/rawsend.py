#!/usr/bin/python3
# Hand-built IPv4 packets from inside a pod's netns, for the "no bypass" test:
#   rawsend.py spoof SRC DST DPORT COUNT       UDP datagrams whose source is SRC (not this pod)
#   rawsend.py frag-later SRC DST DPORT COUNT  only the LAST fragment of UDP datagrams (offset 1480, no
#                                              UDP header in it): a fragment whose first fragment never came
#   rawsend.py plain SRC DST DPORT COUNT       ordinary UDP datagrams from SRC (the control: the method works)
#   rawsend.py ipopts SRC DST DPORT COUNT      UDP datagrams with IP options (IHL 6: NOP NOP NOP EOL)
#   rawsend.py trunc-udp SRC DST DPORT COUNT   IPv4 protocol UDP carrying only 4 bytes: a truncated UDP header
# Uses a raw socket with IP_HDRINCL, so the kernel sends the header as given
# (it fills the checksum, and the total length).
import socket
import struct
import sys


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack(f'!{len(data) // 2}H', data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip_header(src: str, dst: str, ident: int, frag: int, payload_len: int, options: bytes = b'') -> bytes:
    ihl = 5 + len(options) // 4
    h = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, ihl * 4 + payload_len, ident, frag, 64, socket.IPPROTO_UDP, 0, socket.inet_aton(src), socket.inet_aton(dst)) + options
    return h[:10] + struct.pack('!H', csum(h)) + h[12:]


def udp(src: str, dst: str, sport: int, dport: int, body: bytes) -> bytes:
    length = 8 + len(body)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, socket.IPPROTO_UDP, length)
    h = struct.pack('!HHHH', sport, dport, length, 0)
    c = csum(pseudo + h + body) or 0xFFFF
    return struct.pack('!HHHH', sport, dport, length, c) + body


def main() -> None:
    mode, src, dst, dport, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    for i in range(count):
        ident = 0x4000 + i
        if mode in ('spoof', 'plain'):
            payload = udp(src, dst, 40000 + i, dport, f'{mode} {i}\n'.encode())
            pkt = ip_header(src, dst, ident, 0, len(payload)) + payload
        elif mode == 'ipopts':
            payload = udp(src, dst, 40000 + i, dport, f'{mode} {i}\n'.encode())
            pkt = ip_header(src, dst, ident, 0, len(payload), bytes([1, 1, 1, 0])) + payload
        elif mode == 'trunc-udp':
            payload = struct.pack('!HH', 40000 + i, dport)
            pkt = ip_header(src, dst, ident, 0, len(payload)) + payload
        elif mode == 'frag-later':
            # Offset 1480 bytes (185 units of 8), MF clear: the tail of a datagram whose head is never sent.
            body = bytes(200)
            pkt = ip_header(src, dst, ident, 185, len(body)) + body
        else:
            raise SystemExit(f'rawsend.py: unknown mode {mode}')
        s.sendto(pkt, (dst, 0))
    print(f'sent {count} {mode}')


main()
