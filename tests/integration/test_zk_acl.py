"""Scenario: with digest auth the agent's nodes carry creator-all plus world-read ACLs:
a second client without the credentials reads them but cannot change or delete them."""

import pytest
from kazoo.exceptions import NoAuthError

from harness import instance
from zk import kazoo, node_doc, zk_agent, zookeeper


def test_digest_acl(env):
    zk = zookeeper(env)
    r = env.redis()
    a = zk_agent(env, zk, [instance("c", r)], name="h", auth="agent:s3cret")
    a.wait_instance("c", timeout=5, published=True)
    assert "s3cret" not in a.log()
    k = kazoo(env, zk)
    for path in ("/sa", "/sa/default", "/sa/agents", "/sa/default/c", "/sa/agents/h"):
        acls, _ = k.get_acls(path)
        got = sorted((x.id.scheme, x.id.id.split(":")[0], x.perms) for x in acls)
        assert got == [("digest", "agent", 31), ("world", "anyone", 1)], (path, got)
    doc, _ = node_doc(k, "/sa/default/c")
    assert doc["state"] == "up"
    with pytest.raises(NoAuthError):
        k.set("/sa/default/c", b"{}")
    with pytest.raises(NoAuthError):
        k.delete("/sa/default/c")
    with pytest.raises(NoAuthError):
        k.delete("/sa/agents/h")
    with pytest.raises(NoAuthError):
        k.create("/sa/default/intruder", b"x")
    # wrong credentials are just another identity: refused too
    bad = kazoo(env, zk, auth="agent:wrong")
    with pytest.raises(NoAuthError):
        bad.set("/sa/default/c", b"{}")
    assert node_doc(k, "/sa/default/c")[0]["state"] == "up"
    st = a.stats()
    assert st["zk_writes_failed"] == 0
