"""Scenario: a "ZooKeeper" that drops every connection (fakezk.py): at accept, after reading
the ConnectRequest, after answering it plausibly. With a real Redis configured, probing never
stalls, `stats` answers within 200 ms, memory and threads stay flat, and reconnects keep the
C client's pace (recv_timeout/60 between rounds: 6 a second at the default 10 s session
timeout) without spinning -- or, when every connection is dropped right after a good
handshake, the agent's own back-off (at most 3 a second) -- fakezk.measure_agent_against() says exactly what is asserted."""

import pytest

from fakezk import measure_agent_against


@pytest.mark.parametrize("mode", ["drop_on_accept", "drop_handshake", "drop_after"])
def test_zookeeper_drops_every_connection(env, mode):
    measure_agent_against(env, mode)
