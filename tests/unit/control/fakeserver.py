"""A one-shot control server on a real UNIX socket, in a thread: reads one line, sends a canned reply."""

import os
import shutil
import socket
import tempfile
import threading


class CannedServer:
    def __init__(self, reply):
        self.directory = tempfile.mkdtemp(prefix="trc", dir="/tmp")   # sun_path is 107 bytes at most
        self.path = os.path.join(self.directory, "tr0.sock")
        self.reply = reply                  # bytes sent back verbatim
        self.requests = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        connection, _ = self.listener.accept()
        with connection:
            received = b""
            while not received.endswith(b"\n"):
                chunk = connection.recv(4096)
                if not chunk:
                    break
                received += chunk
            self.requests.append(received)
            if self.reply is not None:
                connection.sendall(self.reply)

    def close(self):
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        self.listener.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
