"""Prometheus metrics: the `metrics` answer of the stats socket and the HTTP endpoint of
`metrics_listen`, both read with python3-prometheus-client's text parser; the per-instance
series (their label sets, the _info series, no latency while down, failures by reason
class); the HTTP server's handling of bad requests, slow and idle clients; a port already
in use; reloads.
"""

import http.client
import os
import signal
import socket
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import LOOPBACK, Agent, agent_bin, free_port, instance, pid_alive, proc_threads, \
    wait_until

HEAD_MAX = 8192  # HTTPMETRICS_HEAD_MAX
MAX_CLIENTS = 16  # HTTPMETRICS_MAX_CLIENTS
IO_TIMEOUT = 10.0  # HTTPMETRICS_TIMEOUT
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# ---------------------------------------------------------------------------- helpers

def parse(text):
    """Parses an exposition with prometheus_client and returns {family name: Metric}.

    The client's parser is lax (a sample outside its family silently becomes an untyped
    family of its own), so check the rest of format 0.0.4 here: every family has one HELP
    and one TYPE line before its samples, no family appears twice, and every sample belongs
    to the family declared above it."""
    declared = []
    current = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("# HELP "):
            current = line.split()[2]
            assert current not in declared, "family %s declared twice" % current
            declared.append(current)
        elif line.startswith("# TYPE "):
            assert line.split()[2] == current, "TYPE without HELP: %r" % line
        elif line.startswith("#"):
            continue
        else:
            name = line.split("{", 1)[0].split(" ", 1)[0]
            assert current is not None and name.startswith(current), \
                "sample %r outside its family %r" % (line, current)
    fams = {}
    for f in text_string_to_metric_families(text):
        assert f.type != "untyped", "untyped family %s (a stray sample?)" % f.name
        fams[f.name] = f
    # prometheus_client names a counter family without its _total suffix
    parsed = sorted(n + "_total" if f.type == "counter" else n for n, f in fams.items())
    assert parsed == sorted(declared)
    return fams


def value(fams, family, sample=None, **labels):
    """The value of the one sample of FAMILY (sample name SAMPLE, default the family's or
    its _total) whose labels include LABELS."""
    f = fams[family]
    names = [sample] if sample else [family, family + "_total"]
    found = [s.value for s in f.samples
             if s.name in names and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, "%s%r: %d samples in %r" % (family, labels, len(found), f.samples)
    return found[0]


def http_request(port, method="GET", path="/metrics", timeout=5.0):
    """One request with http.client; returns (status, headers dict, body text)."""
    c = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        body = r.read().decode()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def scrape(port):
    status, headers, body = http_request(port)
    assert status == 200, (status, body)
    assert headers["content-type"] == METRICS_TYPE
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body.encode())
    return parse(body)


def raw_exchange(port, data, timeout=5.0):
    """Sends DATA on a fresh connection, half-closes, and returns every byte received
    until the server closes."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def status_of(response):
    assert response.startswith(b"HTTP/1.1 "), response[:100]
    return int(response.split(b" ", 2)[1])


def agent_version():
    out = subprocess.run([agent_bin(), "-V"], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def metrics_agent(env, instances, port=None, **kw):
    port = port or free_port()
    a = Agent(env, instances=instances, metrics_listen="%s:%d" % (LOOPBACK, port), **kw)
    a.http_port = port
    return a


# ------------------------------------------------------------------------------ tests

def test_metrics_content_from_socket_and_http(env):
    r1, r2 = env.redis(), env.redis()
    started = time.time()
    a = metrics_agent(env, [instance("live", r1, cluster="c1"), instance("doomed", r2)])
    a.wait_instance("live", state="up")
    a.wait_instance("doomed", state="up")

    # Both ways give the same families, with the types the conventions require.
    sock = parse(a.metrics())
    web = scrape(a.http_port)
    assert sorted(sock) == sorted(web)
    expected_types = {
        "process_cpu_seconds": "counter",
        "process_resident_memory_bytes": "gauge",
        "process_open_fds": "gauge",
        "process_start_time_seconds": "gauge",
        "process_threads": "gauge",
        "sentinel_agent_build_info": "gauge",
        "sentinel_agent_instance_up": "gauge",
        "sentinel_agent_instance_info": "gauge",
        "sentinel_agent_instance_last_change_timestamp_seconds": "gauge",
        "sentinel_agent_instance_latency_seconds": "gauge",
        "sentinel_agent_instance_probe_failures": "counter",
        "sentinel_agent_probes": "counter",
        "sentinel_agent_probe_duration_seconds": "histogram",
        "sentinel_agent_zk_session_state": "gauge",
        "sentinel_agent_zk_writes": "counter",
        "sentinel_agent_zk_sessions_expired": "counter",
        "sentinel_agent_zk_watches": "gauge",
        "sentinel_agent_config_reloads": "counter",
    }
    for fams in (sock, web):
        for name, typ in expected_types.items():
            assert name in fams, "family %s missing" % name
            assert fams[name].type == typ, (name, fams[name].type)

    # process_*: what the kernel says about the same pid
    assert value(web, "sentinel_agent_build_info", version=agent_version()) == 1
    assert value(web, "process_threads") == proc_threads(a.pid)
    assert abs(value(web, "process_open_fds") - a.fds()) <= 4
    assert value(web, "process_resident_memory_bytes") > 1 << 20
    assert started - 5 <= value(web, "process_start_time_seconds") <= time.time()
    assert value(web, "process_cpu_seconds") > 0

    # per instance, labelled like the stats socket's objects
    assert value(web, "sentinel_agent_instance_up", name="live", cluster="c1",
                 address=r1.address) == 1
    assert value(web, "sentinel_agent_instance_up", name="doomed", cluster="default",
                 address=r2.address) == 1

    # ZooKeeper is unreachable here: exactly one state is 1, the one `stats` reports
    states = {s.labels["state"]: s.value for s in web["sentinel_agent_zk_session_state"].samples}
    assert sorted(states) == ["closed", "connected", "connecting", "expired"]
    assert sum(states.values()) == 1
    assert states[a.stats()["zk_state"]] == 1
    assert value(web, "sentinel_agent_zk_writes", result="ok") == 0
    assert value(web, "sentinel_agent_zk_writes", result="error") == 0
    assert value(web, "sentinel_agent_zk_watches") == 0

    # probes by result grow; the kill makes errors appear and takes `doomed` to 0
    ok_before = value(web, "sentinel_agent_probes", result="ok")
    err_before = value(web, "sentinel_agent_probes", result="error")
    r2.kill9()
    wait_until(lambda: value(scrape(a.http_port), "sentinel_agent_instance_up",
                             name="doomed") == 0, 5, msg="doomed to be 0 over HTTP")
    sock = parse(a.metrics())
    assert value(sock, "sentinel_agent_instance_up", name="doomed") == 0
    assert value(sock, "sentinel_agent_instance_up", name="live") == 1
    wait_until(lambda: value(scrape(a.http_port), "sentinel_agent_probes",
                             result="ok") > ok_before, 5, msg="ok probes to grow")
    web = scrape(a.http_port)
    assert value(web, "sentinel_agent_probes", result="error") > err_before
    st = a.stats()
    total = sum(s.value for s in web["sentinel_agent_probes"].samples)
    assert total <= st["probes_total"]  # the stats answer came later

    # the histogram: cumulative buckets in increasing le, +Inf == count == successful probes
    h = web["sentinel_agent_probe_duration_seconds"]
    buckets = [(float(s.labels["le"]), s.value) for s in h.samples if s.name.endswith("_bucket")]
    assert len(buckets) >= 5 and buckets[-1][0] == float("inf")
    assert [b[0] for b in buckets] == sorted(b[0] for b in buckets)
    counts = [b[1] for b in buckets]
    assert counts == sorted(counts), "buckets not monotonic: %r" % buckets
    count = value(web, "sentinel_agent_probe_duration_seconds",
                  "sentinel_agent_probe_duration_seconds_count")
    assert counts[-1] == count == value(web, "sentinel_agent_probes", result="ok") > 0
    hsum = value(web, "sentinel_agent_probe_duration_seconds",
                 "sentinel_agent_probe_duration_seconds_sum")
    assert 0 < hsum < count * 0.15  # every successful probe beat the 150 ms timeout

    # reloads by result
    mark = a.log_mark()
    a.signal(signal.SIGHUP)
    a.wait_log(r"configuration reloaded", since=mark)
    web = scrape(a.http_port)
    assert value(web, "sentinel_agent_config_reloads", result="ok") == 1
    assert value(web, "sentinel_agent_config_reloads", result="error") == 0


PER_INSTANCE_LABELS = {
    "sentinel_agent_instance_info": {"name", "cluster", "address", "role", "master", "link"},
    "sentinel_agent_instance_up": {"name", "cluster", "address"},
    "sentinel_agent_instance_last_change_timestamp_seconds": {"name", "cluster"},
    "sentinel_agent_instance_latency_seconds": {"name", "cluster"},
    "sentinel_agent_instance_published": {"name", "cluster"},
    "sentinel_agent_instance_maint": {"name", "cluster"},
    "sentinel_agent_instance_probe_failures": {"name", "cluster", "reason"},
}
CLASSES = ["timeout", "refused", "connection", "protocol", "auth", "loading", "busy",
           "masterdown", "error"]


def names_in(fams, family):
    return sorted(s.labels["name"] for s in fams[family].samples)


def failures(fams, name):
    """{reason class: count} of instance NAME."""
    return {s.labels["reason"]: s.value
            for s in fams["sentinel_agent_instance_probe_failures"].samples
            if s.labels["name"] == name}


def test_instance_series_labels_and_failure_classes(env):
    master = env.redis()
    replica = env.redis(replicaof=master)
    doomed = env.redis()
    locked = env.redis(password="r3dis-s3cret")
    garbage = env.garbage_server()
    hole = env.black_hole(accept=True)
    a = metrics_agent(env, [
        instance("master", master, cluster="c1"),
        instance("replica", replica, cluster="c1"),
        instance("doomed", doomed),
        instance("locked", locked, password="wrong-password"),
        instance("garbage", garbage),
        instance("hole", hole),
    ], timeout="100ms")
    a.wait_instance("master", state="up")
    a.wait_instance("replica", state="up", link="connected", timeout=10)
    a.wait_instance("doomed", state="up")
    for name, reason in (("locked", "auth failed"), ("garbage", "protocol error"),
                         ("hole", "timeout")):
        assert a.wait_instance(name, state="down")["reason"] == reason
    up = ["doomed", "master", "replica"]
    everyone = sorted(up + ["garbage", "hole", "locked"])

    fams = scrape(a.http_port)
    # Every per-instance family has one label set: address (and role) only on _info (and
    # address on _up, SPEC's example); the per-role series is gone.
    for family, labels in PER_INSTANCE_LABELS.items():
        assert family in fams, family
        for smp in fams[family].samples:
            assert set(smp.labels) == labels, (family, smp)
    assert "sentinel_agent_instance_role" not in fams
    for family in ("sentinel_agent_instance_info", "sentinel_agent_instance_up",
                   "sentinel_agent_instance_published", "sentinel_agent_instance_maint"):
        assert names_in(fams, family) == everyone, family

    # _info: the role as ROLE says it, a replica's master and link
    assert value(fams, "sentinel_agent_instance_info", name="master", cluster="c1",
                 address=master.address, role="master", master="", link="") == 1
    assert value(fams, "sentinel_agent_instance_info", name="replica", role="replica",
                 master="%s:%d" % (LOOPBACK, master.port), link="connected") == 1
    assert value(fams, "sentinel_agent_instance_info", name="garbage", role="unknown",
                 master="", link="") == 1

    # the last change is the instances' since_ms; latency only for those up
    for inst in a.instances():
        assert value(fams, "sentinel_agent_instance_last_change_timestamp_seconds",
                     name=inst["name"]) == inst["since_ms"] / 1000.0
    assert names_in(fams, "sentinel_agent_instance_latency_seconds") == up
    for name in up:
        assert 0 < value(fams, "sentinel_agent_instance_latency_seconds", name=name) < 0.1

    # failures by class, every class present for every instance
    for name in everyone:
        assert sorted(failures(fams, name)) == sorted(CLASSES), name
    assert set(failures(fams, "master").values()) == {0}
    # (a reply the loaded test host delays past the timeout is a timeout: it may add some)
    for name, cls in (("locked", "auth"), ("garbage", "protocol"), ("hole", "timeout")):
        f = failures(fams, name)
        assert f[cls] >= 1, (name, f)
        assert sum(f.values()) == f[cls] + (f["timeout"] if cls != "timeout" else 0), (name, f)

    # kill -9: down, its latency sample gone, its failures refused (the link lost first,
    # maybe), and its last change moved
    changed = value(fams, "sentinel_agent_instance_last_change_timestamp_seconds",
                    name="doomed")
    doomed.kill9()
    a.wait_instance("doomed", state="down", reason="connection refused")
    fams = scrape(a.http_port)
    assert names_in(fams, "sentinel_agent_instance_latency_seconds") == ["master", "replica"]
    assert value(fams, "sentinel_agent_instance_up", name="doomed") == 0
    f = failures(fams, "doomed")
    assert f["refused"] >= 1, f
    assert sum(f.values()) == f["refused"] + f["connection"], f
    assert value(fams, "sentinel_agent_instance_last_change_timestamp_seconds",
                 name="doomed") > changed
    assert value(fams, "sentinel_agent_instance_info", name="doomed", role="unknown") == 1

    # The classes add up to each instance's failed probes (counters only grow: the
    # `instances` answer came later).
    later = {i["name"]: i for i in a.instances()}
    for name in everyone:
        assert sum(failures(fams, name).values()) <= later[name]["probes_failed"], name

    # one vocabulary: ok/error (and timeout for probes, disjoint from error)
    results = {s.labels["result"]: s.value for s in fams["sentinel_agent_probes"].samples}
    assert sorted(results) == ["error", "ok", "timeout"]
    assert results["timeout"] >= 1 and results["error"] >= 1
    assert sum(results.values()) <= a.stats()["probes_total"]
    st = a.stats()
    assert sum(results.values()) <= st["probes_ok"] + st["probes_failed"]
    assert results["timeout"] <= st["probes_timeout"]
    for family in ("sentinel_agent_zk_writes", "sentinel_agent_config_reloads"):
        assert sorted(s.labels["result"] for s in fams[family].samples) == ["error", "ok"]

    # the socket's answer is the same exposition
    sock = parse(a.metrics())
    assert sorted(sock) == sorted(fams)


def test_http_bad_requests(env):
    r = env.redis()
    a = metrics_agent(env, [instance("a", r)])
    a.wait_instance("a", state="up")
    port = a.http_port

    status, _, body = http_request(port, path="/")
    assert status == 404 and "/metrics" in body
    assert http_request(port, path="/metricsx")[0] == 404
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = http_request(port, method=method)
        assert status == 405, method
        assert headers["allow"] == "GET, HEAD"
    status, headers, body = http_request(port, method="HEAD")
    assert status == 200 and body == "" and int(headers["content-length"]) > 1000
    assert http_request(port, path="/metrics?debug=1")[0] == 200

    cases = [
        (b"garbage\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # a TLS hello
        (b"GET /metrics HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
        (b"GET metrics HTTP/1.0\r\n\r\n", 400),
        (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
        (b"GET /metrics HTTP/1.0\r\nX: " + b"a" * HEAD_MAX + b"\r\n\r\n", 431),
        (b"GET /metrics HTTP/1.0\r\nHost: x\r\n", 400),  # EOF before the head ended
        (b"GET /metrics HTTP/1.0\n\n", 200),  # bare LF line ends
    ]
    for data, code in cases:
        resp = raw_exchange(port, data)
        assert status_of(resp) == code, (data[:60], resp[:200])
        assert b"\r\nConnection: close\r\n" in resp
    # a connection that says nothing and hangs up gets nothing back
    assert raw_exchange(port, b"") == b""

    # still serving, still probing
    assert a.running()
    before = a.instance("a")["last_check_ms"]
    parse(a.metrics())
    assert value(scrape(port), "sentinel_agent_instance_up", name="a") == 1
    wait_until(lambda: a.instance("a")["last_check_ms"] > before, 3, msg="probing goes on")


def loopback_absorbs(rcvbuf):
    """How many bytes a loopback TCP sender can queue, without blocking, to a peer that
    never reads and has receive buffer RCVBUF: what a scrape must exceed to stall a writer."""
    with socket.socket() as srv:
        srv.bind((LOOPBACK, 0))
        srv.listen(1)
        with socket.socket() as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            c.connect(srv.getsockname())
            s, _ = srv.accept()
            with s:
                s.setblocking(False)
                n = 0
                try:
                    while True:
                        n += s.send(b"x" * 65536)
                except BlockingIOError:
                    return n


def unsent_bytes(port):
    """Bytes queued but not yet acknowledged on the server side of established
    connections to 127.0.0.1:PORT (/proc/net/tcp tx_queue)."""
    total = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fld = line.split()
            if fld[1] == "0100007F:%04X" % port and fld[3] == "01":
                total += int(fld[4].split(":")[0], 16)
    return total


def test_http_slow_and_idle_clients_never_block_the_loop(env):
    r = env.redis()
    # Enough instances with long labels that the answer (~1 KiB each) cannot fit in the
    # socket buffers between the agent and a client that does not read: a blocking write
    # would hang the loop. The fillers probe once an hour, so they cost next to nothing: they
    # are down (no socket), and a down instance is probed every downinter (SPEC), so theirs is
    # an hour too.
    absorbs = loopback_absorbs(4096)
    n = max(200, 2 * absorbs // 1000)
    if n > 20000:
        pytest.skip("loopback buffers absorb %d bytes: too much to stall a writer" % absorbs)
    insts = [instance("live", r, interval="200ms")]
    insts += [instance("f%s%06d" % ("n" * 50, i), "unix:%s/no-such-redis-%s-%06d.sock"
                       % (env.dir, "x" * 40, i), cluster="c" * 64, downinter="60m")
              for i in range(n)]
    a = metrics_agent(env, insts, interval="60m", timeout="100ms")
    a.wait_instance("live", state="up")
    port = a.http_port

    # A client that requests and never reads, with a tiny receive buffer: the agent's
    # answer stays queued on its side.
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect((LOOPBACK, port))
    stuck.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    wait_until(lambda: unsent_bytes(port) > 0, 5, msg="the answer queued, unread")
    # Idle clients, up to the cap: one connection more is closed at once.
    idle = [socket.create_connection((LOOPBACK, port), timeout=5) for _ in range(MAX_CLIENTS - 1)]
    opened = time.monotonic()
    with socket.create_connection((LOOPBACK, port), timeout=5) as extra:
        try:
            assert extra.recv(1) == b""
        except ConnectionResetError:
            pass

    # Meanwhile the loop serves the stats socket and probes on time.
    t0 = time.monotonic()
    assert a.stats()["instances"] == n + 1
    assert time.monotonic() - t0 < 1.0
    before = a.instance("live")["last_check_ms"]
    wait_until(lambda: a.instance("live")["last_check_ms"] > before, 3, msg="probing goes on")
    assert unsent_bytes(port) > 0  # still stuck

    # The stuck client reads its answer in the end, whole and parseable.
    stuck.settimeout(5)
    chunks = []
    while True:
        chunk = stuck.recv(1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    stuck.close()
    head, _, payload = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert len(payload) > absorbs
    fams = parse(payload.decode())
    assert value(fams, "sentinel_agent_instance_up", name="live") == 1
    assert len(fams["sentinel_agent_instance_up"].samples) == n + 1

    # A slot is free again (once the agent has seen the stuck client go): scrapes work while
    # the idle ones still hold theirs.
    fams = wait_until(lambda: scrape(port), 3, msg="a scrape with the idle clients connected")
    assert value(fams, "sentinel_agent_instances") == n + 1
    # The idle clients are closed after the I/O timeout, not before.
    for s in idle:
        s.settimeout(IO_TIMEOUT + 5)
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
        s.close()
    waited = time.monotonic() - opened
    assert IO_TIMEOUT - 1 <= waited <= IO_TIMEOUT + 5, waited
    assert a.running()


def test_metrics_listen_port_in_use_is_fatal(env):
    r = env.redis()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        a = metrics_agent(env, [instance("a", r)], port=port, start=False)
        a.start(wait_ready=False)
        assert a.wait_exit(10) == 1
    log = a.log()
    assert ("error metrics: metrics_listen %s:%d: cannot bind: Address already in use"
            % (LOOPBACK, port)) in log, log
    assert not os.path.exists(a.stats_socket)
    assert "started as" not in log


def test_reload_moves_the_listener_and_keeps_it_on_failure(env):
    r = env.redis()
    a = metrics_agent(env, [instance("a", r)])
    a.wait_instance("a", state="up")
    old = a.http_port
    scrape(old)

    def refused(port):
        try:
            http_request(port, timeout=2)
        except ConnectionRefusedError:
            return True
        return False

    def reload_with(listen, expect):
        mark = a.log_mark()
        if listen is None:
            a.agent_keys.pop("metrics_listen", None)
        else:
            a.agent_keys["metrics_listen"] = listen
        a.write_config()
        a.signal(signal.SIGHUP)
        a.wait_log(r"configuration reloaded", since=mark)
        if expect:
            a.wait_log(expect, since=mark)

    new = free_port()
    reload_with("%s:%d" % (LOOPBACK, new), r"info metrics: serving http://127.0.0.1:%d/metrics"
                % new)
    assert value(scrape(new), "sentinel_agent_config_reloads", result="ok") == 1
    assert refused(old)

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        reload_with("%s:%d" % (LOOPBACK, taken),
                    r"error metrics: metrics_listen 127.0.0.1:%d: cannot bind: Address already "
                    r"in use; still serving 127.0.0.1:%d" % (taken, new))
        assert value(scrape(new), "sentinel_agent_config_reloads", result="ok") == 2

    reload_with(None, None)
    wait_until(lambda: refused(new), 3, msg="listener closed once metrics_listen is gone")
    assert pid_alive(a.pid)
    assert a.stop() == 0


def test_listener_closed_at_shutdown(env):
    r = env.redis()
    a = metrics_agent(env, [instance("a", r)])
    scrape(a.http_port)
    a.signal(signal.SIGTERM)
    assert a.wait_exit(10) == 0
    with pytest.raises(ConnectionRefusedError):
        http_request(a.http_port, timeout=2)
