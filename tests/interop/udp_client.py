# The tutorial's UDP client, adapted only to run in a test: the port comes
# from argv[1], and a socket timeout keeps it from waiting forever for a
# reply that never comes.
import socket
import sys

port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for data in [b'Michael', b'Tracy', b'Sarah']:
    s.sendto(data, ('127.0.0.1', port))
    print(s.recv(1024).decode('utf-8'))
s.close()
