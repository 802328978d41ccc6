"""A reload storm: 100 SIGHUPs alternating two configs (one instance kept, one swapped in and
out each time) leaves threads, fds, ZooKeeper watches and heap where they were."""

import signal
import time

from harness import instance, wait_until
from zk import kazoo, node_doc, zk_agent, zookeeper

HEAP_SLACK = 64 * 1024  # allocator noise; a leak of one instance per reload is far above it


def test_reload_storm_leaks_nothing(env):
    zk = zookeeper(env)
    r1, r2 = env.redis(), env.redis()
    confs = [[instance("keep", r1), instance("swap-a", r2)],
             [instance("keep", r1), instance("swap-b", r2, cluster="other")]]
    a = zk_agent(env, zk, confs[0], name="h")
    k = kazoo(env, zk)
    texts = []
    for c in confs:
        a.instances_conf = c
        texts.append(a.config_text())

    def reload(i):
        n = a.stats()["config_reloads"]
        with open(a.conf_path, "w") as f:
            f.write(texts[i % 2])
        a.signal(signal.SIGHUP)
        wait_until(lambda: a.stats()["config_reloads"] == n + 1, 5, msg="reload %d applied" % i)

    def quiet_fds():
        # The agent closes the fd of the stats connection we just used a moment later:
        # the fewest fds over half a second is the agent's own steady count.
        seen = []
        for _ in range(5):
            seen.append(a.fds())
            time.sleep(0.1)
        return min(seen)

    def settled():
        insts = a.instances()
        return all(i["state"] == "up" and i["published"] for i in insts) and \
            a.stats()["zk_pending"] == 0

    # warm-up: one full cycle, then the baseline
    a.wait_instance("swap-a", state="up", published=True)
    reload(1)
    reload(2)
    wait_until(settled, 5, msg="instances up and published")
    base = a.stats()
    base_threads, base_fds = a.threads(), quiet_fds()

    for i in range(100):
        reload(i + 1)
    # 100 reloads end on config 0 again (swap-a back)
    wait_until(settled, 10, msg="instances up and published after the storm")
    end = a.stats()
    print("heap %d -> %d, fds %d, threads %d" % (base["heap_bytes"], end["heap_bytes"], base_fds,
                                                 base_threads))
    assert end["config_reloads"] == base["config_reloads"] + 100
    assert end["config_reload_failures"] == 0
    assert a.threads() == base_threads
    assert end["threads"] == base["threads"]
    wait_until(lambda: a.fds() == base_fds, 3, msg="fds back to %d" % base_fds)
    assert end["zk_watches"] == base["zk_watches"] == 3
    assert end["heap_bytes"] - base["heap_bytes"] < HEAP_SLACK, (end["heap_bytes"],
                                                                  base["heap_bytes"])
    assert sorted(i["name"] for i in a.instances()) == ["keep", "swap-a"]
    # ZooKeeper holds exactly the current set
    assert node_doc(k, "/sa/default/swap-a")[0]["state"] == "up"
    assert k.exists("/sa/other/swap-b") is None
    assert node_doc(k, "/sa/agents/h")[0]["instances"] == 2
    sid = int(end["zk_session_id"], 16)
    assert sorted(zk.wchc()[sid]) == ["/sa/agents/h", "/sa/default/keep", "/sa/default/swap-a"]
