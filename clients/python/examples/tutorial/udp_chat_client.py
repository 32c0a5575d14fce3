# The socket tutorials' UDP chat client, sending side: each line typed is one
# datagram. framed publishes it to the channel "lobby" and answers how many
# readers got it; readers subscribe over TCP (../chat_reader.py), because
# framed sends no datagram that nobody asked for.
# Server: build/daemon/framed --config config/examples/tutorial-udp-chat.toml
# usage: python3 udp_chat_client.py [PORT]     (first line: your name; "quit" to stop)
import socket
import sys

HOST = "127.0.0.1"
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 9000

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
name = input("name: ")
while True:
    message = input("%s> " % name)
    if message == "quit":
        break
    s.sendto(("publish lobby %s: %s" % (name, message)).encode(), (HOST, PORT))
    data, server = s.recvfrom(1024)
    print("delivered to", data.decode(), "reader(s)")
s.close()
