# The socket tutorials' remote-command client: send a command, read the
# output's size with struct.unpack('i', ...), then the output.
# Server: build/daemon/framed --config config/examples/tutorial-remote-command.toml
# (framed runs only the commands that config names: date, uptime, whoami, id, ls)
# usage: python3 remote_command_client.py [PORT]     (type "quit" to stop)
import socket
import struct
import sys

HOST = "127.0.0.1"
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 9000

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((HOST, PORT))
while True:
    command = input("command: ")
    if command == "quit":
        break
    s.send(command.encode())
    size = struct.unpack("i", s.recv(4))[0]
    output = b""
    while len(output) < size:
        output += s.recv(1024)
    print(output.decode())
s.close()
