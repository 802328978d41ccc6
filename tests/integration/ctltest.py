"""ctltest.py -- helpers for the sentinel-agentctl scenarios: run the ctl with its stdout on a
pseudo-terminal (as an operator sees it) and a canned stats socket whose answers are known
to the byte."""

import fcntl
import os
import pty
import select
import socket
import struct
import subprocess
import termios
import threading
import time

from harness import child_env, ctl_bin


class PtyResult:
    def __init__(self, returncode, stdout, stderr, elapsed):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed

    def __repr__(self):
        return "PtyResult(rc=%r, stdout=%r, stderr=%r)" % (self.returncode, self.stdout,
                                                           self.stderr)


def run_ctl_pty(*args, cols=200, timeout=15.0):
    """Runs sentinel-agentctl ARGS with stdout on a pseudo-terminal COLS wide and stderr on a
    pipe. The terminal's CR LF line ends come back as LF."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
    t0 = time.monotonic()
    p = subprocess.Popen([ctl_bin()] + list(args), stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=subprocess.PIPE, env=child_env())
    os.close(slave)
    out = b""
    deadline = t0 + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its side
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        rc = p.wait(max(0.1, deadline - time.monotonic()))
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
            p.wait()
    err = p.stderr.read().decode()
    p.stderr.close()
    return PtyResult(rc, out.decode().replace("\r\n", "\n"), err, time.monotonic() - t0)


class CannedSocket:
    """A unix stats socket answering each command line from ANSWERS ({command: bytes}); an
    unknown command gets the agent's error object. Torn down by cleanup() (Env.register)."""

    def __init__(self, path, answers):
        self.path = path
        self.answers = answers
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with c:
                c.settimeout(2)
                buf = b""
                try:
                    while b"\n" not in buf:
                        chunk = c.recv(4096)
                        if not chunk:
                            break
                        buf += chunk
                    cmd = buf.split(b"\n", 1)[0].decode()
                    ans = self.answers.get(cmd)
                    if ans is None:
                        ans = b'{"error":"unknown command: %s"}\n' % cmd.encode()
                    c.sendall(ans + b"\n")
                except OSError:
                    pass

    def cleanup(self):
        self._stop.set()
        self.sock.close()
        self._thread.join(2)
