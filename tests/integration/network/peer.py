"""Tiny servers and clients run inside the tests' network namespaces (``ip netns exec``).

Servers print ``ready`` once bound so the fixture knows when to go on. Each reply carries the
peer address the server saw, so tests can check NAT (masquerade vs. preserved source).

    peer.py tcp-server PORT [TAG]    reply "TAG <client-ip>" to every connection
    peer.py udp-server PORT [TAG]    same over udp
    peer.py dns-server IP PORT ADDR  answer every A query with ADDR (a fake upstream resolver)
    peer.py tcp-get HOST PORT [T]    print the server's reply (exit 1 on failure)
    peer.py udp-get HOST PORT [T]    print the server's reply (exit 1 on failure)
    peer.py resolve NAME             print the address getaddrinfo finds (the netns resolv.conf)
"""

from __future__ import annotations

import socket
import struct
import sys
import threading

TIMEOUT = 2.0


def tcp_server(port: int, tag: str) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(128)
    print("ready", flush=True)

    def handle(conn: socket.socket, addr: tuple[str, int]) -> None:
        with conn:
            try:
                conn.sendall(f"{tag} {addr[0]}\n".encode())
            except OSError:
                pass

    while True:
        conn, addr = srv.accept()
        threading.Thread(target=handle, args=(conn, addr), daemon=True).start()


def udp_server(port: int, tag: str) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        _data, addr = srv.recvfrom(2048)
        srv.sendto(f"{tag} {addr[0]}\n".encode(), addr)


def dns_answer(data: bytes, answer: str) -> bytes:
    """Echo the question, one A answer with ADDR (none for other types)."""
    qend = 12
    while data[qend] != 0:
        qend += data[qend] + 1
    qend += 5
    qtype = struct.unpack("!H", data[qend - 4 : qend - 2])[0]
    header = data[:2] + b"\x81\x80" + b"\x00\x01" + (b"\x00\x01" if qtype == 1 else b"\x00\x00")
    header += b"\x00\x00\x00\x00"
    body = data[12:qend]
    if qtype == 1:
        body += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + socket.inet_aton(answer)
    return header + body


def dns_tcp_server(ip: str, port: int, answer: str) -> None:
    """The same answers over TCP (length-prefixed), with the answer's last octet + 1 so a
    test can tell which transport the forwarder used."""
    octets = answer.split(".")
    tcp_answer = ".".join([*octets[:3], str(int(octets[3]) + 1)])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((ip, port))
    srv.listen(8)
    while True:
        conn, _ = srv.accept()
        with conn:
            head = conn.recv(2)
            if len(head) < 2:
                continue
            size = struct.unpack("!H", head)[0]
            data = b""
            while len(data) < size:
                chunk = conn.recv(size - len(data))
                if not chunk:
                    break
                data += chunk
            if len(data) == size and size >= 12:
                reply = dns_answer(data, tcp_answer)
                conn.sendall(struct.pack("!H", len(reply)) + reply)


def dns_server(ip: str, port: int, answer: str) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind((ip, port))
    threading.Thread(target=dns_tcp_server, args=(ip, port, answer), daemon=True).start()
    print("ready", flush=True)
    while True:
        data, addr = srv.recvfrom(2048)
        if len(data) < 12:
            continue
        srv.sendto(dns_answer(data, answer), addr)


def tcp_get(host: str, port: int, timeout: float = TIMEOUT) -> int:
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            data = conn.recv(1024)
    except OSError as exc:
        print(f"error {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(data.decode())
    return 0 if data else 1


def udp_get(host: str, port: int, timeout: float = TIMEOUT) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for _attempt in range(2):
            try:
                sock.sendto(b"ping", (host, port))
                data, _ = sock.recvfrom(1024)
            except OSError as exc:
                print(f"error {exc}", file=sys.stderr)
                continue
            sys.stdout.write(data.decode())
            return 0
    return 1


def resolve(name: str) -> int:
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as exc:
        print(f"error {exc}", file=sys.stderr)
        return 1
    print(infos[0][4][0])
    return 0


def main(argv: list[str]) -> int:
    cmd = argv[0]
    if cmd == "tcp-server":
        tcp_server(int(argv[1]), argv[2] if len(argv) > 2 else "tcp")
    elif cmd == "udp-server":
        udp_server(int(argv[1]), argv[2] if len(argv) > 2 else "udp")
    elif cmd == "dns-server":
        dns_server(argv[1], int(argv[2]), argv[3])
    elif cmd == "tcp-get":
        return tcp_get(argv[1], int(argv[2]), *[float(a) for a in argv[3:4]])
    elif cmd == "udp-get":
        return udp_get(argv[1], int(argv[2]), *[float(a) for a in argv[3:4]])
    elif cmd == "resolve":
        return resolve(argv[1])
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
