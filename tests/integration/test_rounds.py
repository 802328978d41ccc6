"""Probe rounds: instances are probed together in rounds of at most 100 ms, spread over the
interval (not all at once, not each at its own moment), and a stall of the agent longer than
an interval does not leave them all in one round afterwards.

20 instances at interval 1 s fall into 10 rounds of 2. The moment each was last probed
(`last_check_ms`, the end of its probe) is read from `instances`; probes of one round end
within a few milliseconds of each other."""

import signal
import time

from harness import instance, wait_until

N = 20
INTERVAL_MS = 1000


def rounds(agent):
    """The groups of instances whose last probes ended within 15 ms of each other, as a list
    of sizes (phases taken modulo the interval, so a group may wrap around 0)."""
    insts = agent.instances()
    assert len(insts) == N
    phases = sorted(i["last_check_ms"] % INTERVAL_MS for i in insts)
    groups = [[phases[0]]]
    for p in phases[1:]:
        if p - groups[-1][-1] <= 15:
            groups[-1].append(p)
        else:
            groups.append([p])
    if len(groups) > 1 and phases[0] + INTERVAL_MS - phases[-1] <= 15:
        groups[0] += groups.pop()
    return sorted(len(g) for g in groups)


def settled(agent):
    """Waits until every instance has completed probes for two whole intervals."""
    counts = {i["name"]: i["probes_ok"] + i["probes_failed"] for i in agent.instances()}
    wait_until(lambda: all(i["probes_ok"] + i["probes_failed"] >= counts[i["name"]] + 2
                           for i in agent.instances()), 5, msg="two more probes each")


def test_probes_fall_in_rounds_that_survive_a_stall(env):
    r = env.redis()
    a = env.agent([instance("i%02d" % i, r) for i in range(N)], interval="%dms" % INTERVAL_MS,
                  timeout="500ms")
    settled(a)
    before = rounds(a)
    print("rounds before the stall: %s" % before)
    assert 8 <= len(before) <= 10 and max(before) <= 3, before

    a.signal(signal.SIGSTOP)
    time.sleep(2.5 * INTERVAL_MS / 1000)
    a.signal(signal.SIGCONT)
    settled(a)
    after = rounds(a)
    print("rounds after a 2.5 s stall: %s" % after)
    assert 8 <= len(after) <= 10 and max(after) <= 3, after
    assert all(i["state"] == "up" for i in a.instances())
