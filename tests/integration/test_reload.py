"""SIGHUP reload: a valid config is applied as a diff, an invalid one is refused and counted.

Unchanged instances keep their connection (the same Redis client id), state and since_ms;
removed ones disappear; new ones start probing; changed ones restart.
"""

import re
import signal

from harness import Agent, instance, wait_until


def client_ids(redis, exclude=()):
    """Ids of the connections REDIS has, but for this call's own and those in EXCLUDE."""
    c = redis.client()
    try:
        me = c.client_id()
        return sorted(cl["id"] for cl in c.client_list()
                      if cl["id"] != str(me) and cl["id"] not in exclude)
    finally:
        c.close()


def test_reload_applies_diff(env):
    r1, r2, r3 = env.redis(), env.redis(), env.redis()
    # connections that are not the agent's (the harness's readiness check)
    others = {r: set(client_ids(r)) for r in (r1, r2, r3)}

    def agent_client_ids(r):
        return client_ids(r, others[r])

    a = Agent(
        env, instances=[instance("keep", r1), instance("drop", r2), instance("change", r2)])
    a.wait_instance("keep", state="up")
    a.wait_instance("drop", state="up")
    a.wait_instance("change", state="up")
    keep_before = a.instance("keep")
    ids_before = agent_client_ids(r1)
    assert len(ids_before) == 1

    mark = a.log_mark()
    a.instances_conf = [instance("keep", r1), instance("change", r3, cluster="moved"),
                        instance("new", r3)]
    a.write_config()
    a.signal(signal.SIGHUP)
    a.wait_log(r"info agent: configuration reloaded: 3 instances \(1 added, 1 removed, 1 changed\)",
               since=mark)
    a.wait_instance("new", state="up")
    changed = a.wait_instance("change", state="up", cluster="moved")
    assert changed["address"] == r3.address
    names = sorted(i["name"] for i in a.instances())
    assert names == ["change", "keep", "new"]

    keep_after = a.instance("keep")
    assert keep_after["state"] == "up"
    assert keep_after["since_ms"] == keep_before["since_ms"]
    # probing of the unchanged instance went on over the same connection
    wait_until(lambda: a.instance("keep")["last_check_ms"] > keep_after["last_check_ms"], 3)
    assert agent_client_ids(r1) == ids_before
    # the dropped instance's connection to r2 is closed
    wait_until(lambda: agent_client_ids(r2) == [], 3, msg="agent connections to r2 closed")
    st = a.stats()
    assert st["config_reloads"] == 1
    assert st["config_reload_failures"] == 0
    assert st["instances"] == 3


def test_reload_refuses_invalid_config(env):
    r1 = env.redis()
    a = Agent(env, instances=[instance("a", r1)])
    before = a.wait_instance("a", state="up")
    good = a.config_text()

    mark = a.log_mark()
    with open(a.conf_path, "w") as f:
        f.write(good + "\n[instance a]\naddress = 127.0.0.1:1\n[bogus]\nx = 1\n")
    a.signal(signal.SIGHUP)
    m = a.wait_log(r"error config: reload refused: (\d+) errors?", since=mark)
    assert int(m.group(1)) >= 2
    log = a.log()[mark:]
    # each error names the file and its line
    lines = [l for l in log.splitlines() if re.match(r"error config: .*:\d+: error: ", l)]
    assert len(lines) == int(m.group(1)), log
    assert a.running()
    st = a.stats()
    assert st["config_reload_failures"] == 1
    assert st["config_reloads"] == 0
    after = a.instance("a")
    assert after["state"] == "up" and after["since_ms"] == before["since_ms"]
    assert after["address"] == r1.address

    # an unchanged valid file still counts as a reload
    with open(a.conf_path, "w") as f:
        f.write(good)
    a.signal(signal.SIGHUP)
    wait_until(lambda: a.stats()["config_reloads"] == 1, 3)
    assert a.stats()["config_reload_failures"] == 1
