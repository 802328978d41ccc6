"""Scenario: a probing user whose ACL lacks +role. ROLE gets `-NOPERM`, PING still works: the
instance stays `up` with role `unknown` (reason "" as for any up instance), and the agent
says why at warn -- a line of component `instance NAME` that mentions ROLE (the suggested
wording: `warn instance NAME: ROLE refused (NOPERM): the user needs +role; role unknown`),
not once per probe. Once the ACL allows ROLE, the role is back at the next probe."""

from harness import instance, wait_until


def test_noperm_on_role_keeps_up_and_warns(env):
    r = env.redis(users={"prober": "s3cret"})
    c = r.client()
    c.execute_command("ACL", "SETUSER", "prober", "-role")
    pc = r.client(username="prober", password="s3cret")
    try:
        pc.execute_command("ROLE")
        raise AssertionError("ROLE should be refused to prober")
    except Exception as e:  # noqa: BLE001 -- redis-py's NoPermissionError
        assert "NOPERM" in str(e) or "permission" in str(e).lower(), e
    assert pc.ping()

    a = env.agent([instance("acl", r, username="prober", password="s3cret")],
                  interval="200ms", timeout="150ms", rise=2, fall=2)
    inst = a.wait_instance("acl", timeout=5, state="up")
    assert inst["role"] == "unknown" and inst["reason"] == "", inst
    a.wait_log(r"^warn instance acl: .*ROLE", timeout=3)
    # Still up many probes later, and warned about once, not per probe.
    ok0 = a.stats()["probes_ok"]
    wait_until(lambda: a.stats()["probes_ok"] >= ok0 + 10, timeout=5, msg="10 more probes")
    inst = a.instance("acl")
    assert inst["state"] == "up" and inst["role"] == "unknown", inst
    warns = [ln for ln in a.log().splitlines() if ln.startswith("warn instance acl:") and "ROLE" in ln]
    assert len(warns) <= 2, warns
    assert "s3cret" not in a.log()

    # Granted: the role shows at once (ROLE goes with every probe).
    c.execute_command("ACL", "SETUSER", "prober", "+role")
    a.wait_instance("acl", timeout=2, state="up", role="master")
