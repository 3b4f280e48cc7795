"""Coffer's S3-compatible test server: moto's ThreadedMotoServer on a free loopback port.

Prints `READY http://127.0.0.1:PORT` once it accepts connections, then serves until its standard input reaches
EOF (so a killed test run leaves no orphan) or it gets SIGTERM. Used by test/servers/s3-server.ts.
"""
import signal
import sys
import threading

from moto.server import ThreadedMotoServer


def main() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"READY http://{host}:{port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()
