"""Scenario: the `downinter` key -- the probe period while an instance is down.

Config: accepted in [agent] and in [instance NAME]; default 250ms; range 50ms .. interval
(the instance's own interval for an instance). An explicit value out of range, or not a
duration, is an error naming FILE:LINE and the key (exit 78 from -t and at start, every error
reported). An unset downinter with an interval below 250 ms is min(250ms, interval), not an
error (configs with `interval = 100ms` stay valid).

Behaviour: a down instance (refused port) at interval 1 s is probed every downinter: at
least 10 failed probes within 2.5 s at downinter 100ms, at least 6 within 2.5 s at the
default; an up instance beside them stays at the interval."""

import time

from harness import Agent, instance, wait_until


def _line_of(text, needle, after=None):
    """1-based number of the first line of TEXT equal to NEEDLE (after the line AFTER)."""
    lines = text.splitlines()
    start = lines.index(after) + 1 if after else 0
    return lines.index(needle, start) + 1


def _check(env, a):
    return env.run_agent("-t", "-c", a.conf_path)


def test_valid_downinter_values(env):
    r = env.redis()
    cases = [
        dict(agent=dict(interval="1s", downinter="100ms"), inst={}),
        dict(agent=dict(interval="1s", downinter="1s"), inst={}),
        dict(agent=dict(interval="1s"), inst=dict(downinter="50ms")),
        dict(agent=dict(interval="1s", downinter="500ms"), inst=dict(interval="2s", downinter="2s")),
        dict(agent=dict(interval="100ms", timeout="50ms"), inst={}),  # default 250ms > interval
        dict(agent=dict(interval="1s", downinter=300), inst={}),  # bare integer: ms
    ]
    for c in cases:
        a = Agent(env, [instance("x", r, **c["inst"])], start=False, **c["agent"])
        p = _check(env, a)
        assert p.returncode == 0 and p.stdout.strip() == "%s: ok" % a.conf_path, \
            (c, p.returncode, p.stdout, p.stderr)


def test_out_of_range_downinter_is_an_error_naming_the_line(env):
    r = env.redis()
    a = Agent(env, [instance("low", r, downinter="10ms"),
                    instance("high", r, interval="1s", downinter="1500ms"),
                    instance("junk", r, downinter="soon")],
              start=False, interval="1s", downinter="49ms")
    text = a.config_text()
    want = {
        _line_of(text, "downinter = 49ms"): "49ms",
        _line_of(text, "downinter = 10ms", after="[instance low]"): "10ms",
        _line_of(text, "downinter = 1500ms", after="[instance high]"): "1500ms",
        _line_of(text, "downinter = soon", after="[instance junk]"): "soon",
    }
    for argv in (("-t", "-c", a.conf_path), ("-c", a.conf_path)):
        p = env.run_agent(*argv, timeout=10)
        assert p.returncode == 78, (argv, p.returncode, p.stderr)
        for line, value in want.items():
            prefix = "%s:%d: error: " % (a.conf_path, line)
            got = [ln for ln in p.stderr.splitlines() if ln.startswith(prefix)]
            assert got, "no error for line %d (%s) in:\n%s" % (line, value, p.stderr)
            assert "downinter" in got[0] and "unknown" not in got[0], got[0]

    # Agent-level downinter above the agent's interval.
    b = Agent(env, [instance("x", r)], start=False, interval="1s", timeout="500ms", downinter="2s")
    p = _check(env, b)
    line = _line_of(b.config_text(), "downinter = 2s")
    assert p.returncode == 78, (p.returncode, p.stderr)
    assert any(ln.startswith("%s:%d: error: " % (b.conf_path, line)) and "downinter" in ln
               for ln in p.stderr.splitlines()), p.stderr


def test_down_instances_probed_every_downinter(env):
    live = env.redis()
    a = env.agent([instance("fast", "127.0.0.1:%d" % env.closed_port(), downinter="100ms"),
                   instance("default", "127.0.0.1:%d" % env.closed_port()),
                   instance("live", live)],
                  interval="1s", timeout="500ms", rise=2, fall=2)
    a.wait_instance("fast", timeout=5, state="down")
    a.wait_instance("default", timeout=5, state="down")
    a.wait_instance("live", timeout=5, state="up")

    def failed(name):
        return a.instance(name)["probes_failed"]

    t0 = time.monotonic()
    f0, d0, l0 = failed("fast"), failed("default"), a.instance("live")["probes_ok"]
    try:
        wait_until(lambda: failed("fast") >= f0 + 10 and failed("default") >= d0 + 6, 2.5,
                   interval=0.05, msg="down instances probed every downinter")
    finally:
        dt = time.monotonic() - t0
        print("in %.2f s: fast (100ms) %d failed probes, default (250ms) %d, live %d ok"
              % (dt, failed("fast") - f0, failed("default") - d0, a.instance("live")["probes_ok"] - l0))
    assert a.instance("live")["probes_ok"] - l0 <= dt / 1.0 + 2
