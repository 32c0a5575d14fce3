# The socket tutorials' UDP upper-case client: sendto, then recvfrom.
# Server: build/daemon/framed --config config/examples/tutorial-upper.toml
# usage: python3 upper_udp_client.py [PORT]     (type "quit" to stop)
import socket
import sys

HOST = "127.0.0.1"
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 9000

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while True:
    message = input("> ")
    if message == "quit":
        break
    s.sendto(message.encode(), (HOST, PORT))
    data, server = s.recvfrom(1024)
    print("Received:", data.decode())
s.close()
