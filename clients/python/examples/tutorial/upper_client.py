# The socket tutorials' upper-case client, as they write it: connect, then
# for each line typed, send it and print what comes back.
# Server: build/daemon/framed --config config/examples/tutorial-upper.toml
# usage: python3 upper_client.py [PORT]     (type "quit" to stop)
import socket
import sys

HOST = "127.0.0.1"
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 9000

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((HOST, PORT))
while True:
    message = input("> ")
    if message == "quit":
        break
    s.sendall(message.encode())
    data = s.recv(1024)
    print("Received:", data.decode())
s.close()
