"""Scenario: roles ROLE does not know. A KeyDB-style server answering ROLE with
`active-replica` as the first element, and servers whose ROLE answer is malformed (an empty
array, an integer, an error), are `up` (PING answers) with role `unknown` -- never a parse
failure, never a crash -- with `master` "", `link` "" and `replicas` 0; the agent keeps
probing them and a real Redis beside them, and its stats socket keeps answering.
The fake servers are fakeredis.FakeRedis."""

from fakeredis import encode, fake_redis
from harness import instance, pid_alive, wait_until

ROLE_REPLIES = {
    # KeyDB with active replication: like a replica's answer, under another name.
    "keydb": encode([b"active-replica", b"127.0.0.1", 6380, b"connected", 12345]),
    "empty": encode([]),
    "integer": b":42\r\n",
    "error": b"-ERR unknown command 'ROLE'\r\n",
    "nested": encode([[b"master"], 0, []]),
}


def test_unknown_roles_are_unknown_and_up(env):
    fakes = {name: fake_redis(env, role_reply=reply) for name, reply in ROLE_REPLIES.items()}
    real = env.redis()
    a = env.agent([instance(n, f) for n, f in fakes.items()] + [instance("real", real)],
                  interval="200ms", timeout="150ms", rise=2, fall=2)
    for name, fake in fakes.items():
        inst = a.wait_instance(name, timeout=5, state="up")
        assert inst["reason"] == "" and inst["role"] == "unknown", inst
        assert (inst.get("master"), inst.get("link"), inst.get("replicas")) == ("", "", 0), inst
    assert a.wait_instance("real", timeout=5, state="up")["role"] == "master"

    # ROLE is asked with every probe, and the answers change nothing: the agent lives on.
    before = {n: dict(f.commands) for n, f in fakes.items()}
    check0 = a.instance("real")["last_check_ms"]
    wait_until(lambda: all(fakes[n].commands.get("ROLE", 0) >= before[n].get("ROLE", 0) + 3
                           and fakes[n].commands.get("PING", 0) >= before[n].get("PING", 0) + 3
                           for n in fakes), timeout=5,
               msg="every fake to get 3 more PING+ROLE probes")
    assert pid_alive(a.pid) and a.running()
    states = {i["name"]: (i["state"], i["role"]) for i in a.instances()}
    assert states == dict({n: ("up", "unknown") for n in fakes}, real=("up", "master")), states
    assert a.instance("real")["last_check_ms"] > check0
    st = a.stats()
    assert st["probes_total"] == st["probes_ok"] + st["probes_failed"]
    assert a.stop() == 0
