# The tutorial's UDP server, adapted only to run in a test: the port comes
# from argv[1] (0 lets the OS choose, and the line below shows the real
# one), and each line is flushed so the test sees it at once.
import socket
import sys

port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', port))
print('Bind UDP on %d...' % s.getsockname()[1], flush=True)
while True:
    data, addr = s.recvfrom(1024)
    print('Received from %s:%s.' % addr, flush=True)
    s.sendto(b'Hello, %s!' % data, addr)
