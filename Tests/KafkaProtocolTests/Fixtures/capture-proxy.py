#!/usr/bin/env python3
"""Loopback TCP proxy that records every Kafka request frame a client sends.

Usage: capture-proxy.py LISTEN_PORT BROKER_PORT OUT_FILE
Each line of OUT_FILE: api_key api_version hex-of-frame-without-size-prefix.
Used to capture golden request bytes from kcat/librdkafka (start the broker with
--advertise 127.0.0.1:LISTEN_PORT so every connection goes through the proxy).
"""
import socket, struct, sys, threading

listen_port, broker_port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()

def pump(src, dst, record):
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if record:
                buf += data
                while len(buf) >= 4:
                    n = struct.unpack(">i", buf[:4])[0]
                    if len(buf) < 4 + n:
                        break
                    frame = buf[4:4 + n]
                    buf = buf[4 + n:]
                    key, ver = struct.unpack(">hh", frame[:4])
                    with lock, open(out, "a") as f:
                        f.write(f"{key} {ver} {frame.hex()}\n")
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen(64)
while True:
    c, _ = srv.accept()
    b = socket.create_connection(("127.0.0.1", broker_port))
    threading.Thread(target=pump, args=(c, b, True), daemon=True).start()
    threading.Thread(target=pump, args=(b, c, False), daemon=True).start()
