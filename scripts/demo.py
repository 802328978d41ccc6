#!/usr/bin/python3
"""demo.py -- a local sentinel-agent demo: two throwaway redis-servers (a master and its
replica) and a throwaway ZooKeeper on loopback ports, the agent in the foreground against
them, and the commands to query it. Ctrl-C (or --duration) stops everything it started.

Run it through scripts/demo.sh, which installs what is missing and builds first.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402
import zk as zkfix  # noqa: E402

ROOT = "/sentinel-agent"


def show_znodes(client):
    print("\n--- znodes under %s (read with kazoo) ---" % ROOT, flush=True)
    for child in sorted(client.get_children(ROOT)):
        base = "%s/%s" % (ROOT, child)
        for node in sorted(client.get_children(base)):
            data, stat = client.get("%s/%s" % (base, node))
            kind = "ephemeral" if stat.ephemeralOwner else "persistent"
            print("%s/%s (%s)\n    %s" % (base, node, kind, data.decode() or "(empty)"))
    print(flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--duration", type=float, default=0,
                    help="stop after this many seconds (default: run until Ctrl-C)")
    args = ap.parse_args()
    os.environ["SA_BUILD_DIR"] = os.path.abspath(args.build_dir)

    env = harness.Env()
    agent = None
    try:
        print("starting two redis-servers and ZooKeeper in %s ..." % env.dir, flush=True)
        master = env.redis(name="master")
        replica = env.redis(name="replica", replicaof=master)
        zk = zkfix.zookeeper(env)
        sock = env.path("stats.sock")
        conf = env.path("sentinel-agent.conf")
        with open(conf, "w") as f:
            f.write("[agent]\nname = demo-host\ninterval = 500ms\ntimeout = 250ms\n"
                    "stats_socket = %s\n\n[zookeeper]\nhosts = %s\nroot = %s\n"
                    "session_timeout = 6s\n\n"
                    "[instance cache-a]\naddress = %s\ncluster = cache\n\n"
                    "[instance cache-b]\naddress = %s\ncluster = cache\n\n"
                    "[instance nowhere]\naddress = 127.0.0.1:%d\ncluster = spare\n"
                    % (sock, zk.hosts, ROOT, master.address, replica.address,
                       harness.free_port()))
        ctl = os.path.join(os.environ["SA_BUILD_DIR"], "sentinel-agentctl")
        print("""
config: %(conf)s
Query the running agent from another terminal:
    %(ctl)s -s %(sock)s instances
    %(ctl)s -s %(sock)s stats
    echo metrics | socat - UNIX-CONNECT:%(sock)s
Make something happen:
    redis-cli -p %(mport)d shutdown nosave   # cache-a goes down at once
    kill -HUP %(pidhint)s   # reload the config
Read the znodes with ZooKeeper's own client:
    /usr/share/zookeeper/bin/zkCli.sh -server %(zk)s get %(root)s/cache/cache-a
""" % {"conf": conf, "ctl": ctl, "sock": sock, "mport": master.port,
       "pidhint": "$(pgrep -f 'sentinel-agent -c %s')" % conf, "zk": zk.hosts, "root": ROOT},
              flush=True)

        agent = subprocess.Popen([harness.agent_bin(), "-c", conf], stdin=subprocess.DEVNULL)
        client = zkfix.kazoo(env, zk)
        harness.wait_until(lambda: client.exists("%s/cache/cache-b" % ROOT), 10,
                           msg="the demo's nodes to be published")
        out = subprocess.run([ctl, "-s", sock, "instances"], capture_output=True, text=True)
        print("\n--- sentinel-agentctl instances ---")
        for inst in json.loads(out.stdout):
            print("%-10s %-8s %-5s %-8s %s" % (inst["name"], inst["cluster"], inst["state"],
                                                inst["role"], inst["reason"]))
        show_znodes(client)
        print("agent running (pid %d); Ctrl-C stops the demo." % agent.pid, flush=True)
        deadline = time.monotonic() + args.duration if args.duration else None
        while agent.poll() is None:
            if deadline and time.monotonic() > deadline:
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                rc = agent.wait(10)
                print("agent exited with %d" % rc, flush=True)
            except subprocess.TimeoutExpired:
                agent.kill()
        env.cleanup()
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    sys.exit(main())
