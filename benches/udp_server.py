# The tutorial's UDP greeting server (udp-programming.md), unchanged but for
# the port, taken from argv[1] (0: the OS chooses), so benches/compare.sh can
# run it beside the others. Used only when tests/interop/udp_server.py is
# not there.
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 9999
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', port))
print('Bind UDP on %d...' % s.getsockname()[1], flush=True)
while True:
    data, addr = s.recvfrom(1024)
    print('Received from %s:%s.' % addr)
    s.sendto(b'Hello, %s!' % data, addr)
