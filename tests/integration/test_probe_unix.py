"""Scenario: an instance addressed by unix socket is up; when that redis stops and its
socket file disappears the instance is down at once; it comes back with the server."""

import os

from harness import instance


def test_unix_socket_instance(env):
    r = env.redis(unix=True)
    assert r.address.startswith("unix:/")
    a = env.agent([instance("sock", r)], interval="200ms", timeout="150ms", rise=2, fall=2)
    inst = a.wait_instance("sock", timeout=5, state="up")
    assert inst["role"] == "master" and inst["reason"] == ""
    assert inst["address"] == r.address
    assert inst["latency_us"] > 0

    mark = a.log_mark()
    r.stop()
    assert not os.path.exists(r.unix_path)
    down = a.wait_instance("sock", timeout=2, state="down")
    assert down["reason"] in ("no such socket", "connection refused"), down
    a.wait_log(r"^info instance sock: up -> down \((no such socket|connection refused)\)$",
               timeout=2, since=mark)
    # A missing socket is conclusive and stays so.
    assert a.wait_instance("sock", timeout=2, consecutive_fail=lambda n: n >= 3)["state"] == "down"

    mark = a.log_mark()
    r.start()
    a.wait_instance("sock", timeout=5, state="up", reason="")
    a.wait_log(r"^info instance sock: down -> up\b", timeout=2, since=mark)
