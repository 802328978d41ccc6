"""Scenario: password-protected Redis. The right password (or an ACL user) is up; a wrong
or missing password is down with `auth failed`; no password ever shows in the agent's
output."""

from harness import instance, wait_until

SERVER_PW = "Srv-Pw-7f3a9c"
WRONG_PW = "Wrong-Pw-1b2d4e"
USER = "appuser"
USER_PW = "Usr-Pw-5e6f7a"
SECRETS = (SERVER_PW, WRONG_PW, USER_PW)


def test_passwords(env):
    r = env.redis(password=SERVER_PW, users={USER: USER_PW})
    a = env.agent([
        instance("right", r, password=SERVER_PW),
        instance("wrong", r, password=WRONG_PW),
        instance("nopass", r),
        instance("acl", r, username=USER, password=USER_PW),
        instance("acl-wrong", r, username=USER, password=WRONG_PW),
    ], log_level="debug")

    right = a.wait_instance("right", timeout=5, state="up")
    assert right["role"] == "master" and right["reason"] == ""
    acl = a.wait_instance("acl", timeout=5, state="up")
    assert acl["role"] == "master"
    for name in ("wrong", "nopass", "acl-wrong"):
        inst = a.wait_instance(name, timeout=5, state="down")
        assert inst["reason"] == "auth failed", inst
        assert inst["role"] == "unknown"

    # Let a few more probes (and reconnects) happen, then look everywhere.
    ok0 = a.stats()["probes_ok"]
    wait_until(lambda: a.stats()["probes_ok"] >= ok0 + 4, timeout=5, msg="more probes")
    outputs = {
        "stats": a.command("stats"),
        "instances": a.command("instances"),
        "metrics": a.command("metrics"),
        "help": a.command("help"),
    }
    # And the state is still right after the extra probes.
    states = {i["name"]: i["state"] for i in a.instances()}
    assert states == {"right": "up", "acl": "up", "wrong": "down", "nopass": "down",
                      "acl-wrong": "down"}
    rc = a.stop()
    assert rc == 0
    outputs["stderr"] = a.log()
    with open(a.stdout_path, errors="replace") as f:
        outputs["stdout"] = f.read()
    for where, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, "password %r appears in %s" % (secret, where)
