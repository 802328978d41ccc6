"""Scenario: a "ZooKeeper" that never answers, or answers with garbage (fakezk.py): random
bytes for a handshake; an expired-session answer (timeOut 0); a plausible answer followed by
a frame of length -1, or by a frame announcing ~2 GiB and streaming bytes fast. Against each,
with a real Redis configured: probing never stalls, `stats` answers within 200 ms, memory and
threads stay flat, and there is no reconnect spin (connects/s and CPU bounded) --
fakezk.measure_agent_against() says exactly what is asserted.

What the agent does about each (agent/zksession.c, docs/zookeeper.md "Hostile servers"):
garbage read as a read-only session, and a negotiated timeout of 0 (or 14 h), are refused
at the session event; a spinning client IO thread (frame length -1) and a frame of gigabytes
are caught by the publisher's watchdog (client threads' CPU, heap) within a tick or two; every
handle given up is closed off the loop, and the next one opens after our own back-off.
"""

import pytest

from fakezk import measure_agent_against


@pytest.mark.parametrize("mode", ["silent", "garbage", "expired", "bad_frame", "huge_frame"])
def test_hostile_zookeeper_answers(env, mode):
    measure_agent_against(env, mode)
