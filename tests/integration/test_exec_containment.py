"""daemon.exec_containment: each mode, against the real daemon and a command
that escapes its process group into a new session (setsid), the way
daemonizing programs do.

- "cgroup": needs a cgroup v2 directory the daemon may divide; the test makes
  one (as root, where the hierarchy is writable) and starts the daemon in it,
  which is what systemd's Delegate=yes gives a service. Skipped elsewhere.
- "subreaper": needs nothing.
- "process_group": the escape outlives the run, as documented.
"""

import os
import shutil
import signal
import time

import pytest

from framed_client import assert_error, assert_ok
from test_exec import ESCAPE, AWAIT_ESCAPE, exec_factory, gone, make_escape_dir, run, running  # noqa: F401 (a fixture)

ESCAPE_DIR = make_escape_dir()  # its own: test_exec removes its one when done

COMMANDS = {
    "escape": {"argv": ["/bin/sh", "-c", ESCAPE + " </dev/null >/dev/null 2>&1 & " + AWAIT_ESCAPE, ESCAPE_DIR]},
    "escapelong": {"argv": ["/bin/sh", "-c", ESCAPE + " </dev/null >/dev/null 2>&1 & " + AWAIT_ESCAPE + "; sleep 60",
                            ESCAPE_DIR], "timeout": "120s"},
    # Holds the escape's pid long enough to look at it from outside.
    "escapewait": {"argv": ["/bin/sh", "-c", ESCAPE + " </dev/null >/dev/null 2>&1 & " + AWAIT_ESCAPE + "; sleep 30",
                            ESCAPE_DIR], "timeout": "1s"},
}
LISTENERS = [{"kind": "tcp", "name": "tcp"}]


def teardown_module():
    shutil.rmtree(ESCAPE_DIR, ignore_errors=True)


def cgroup2_root():
    """Where the cgroup v2 hierarchy is mounted, or None."""
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            before, _, after = line.partition(" - ")
            if after.startswith("cgroup2 "):
                fields = before.split()
                if fields[3] == "/":
                    return fields[4]
    return None


def cgroup_of(pid="self"):
    """The process's cgroup in the v2 hierarchy, or None."""
    with open("/proc/%s/cgroup" % pid) as cgroups:
        for line in cgroups:
            if line.startswith("0::"):
                return line[3:].strip()
    return None


@pytest.fixture
def delegated_cgroup():
    """A fresh cgroup beside this process's, as a delegated one would be, or
    a skip where this process may not make one."""
    root, mine = cgroup2_root(), cgroup_of()
    if root is None or mine is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    path = os.path.join(root + mine.rstrip("/"), "framed-test-%d-%d" % (os.getpid(), time.monotonic_ns()))
    try:
        os.mkdir(path)
    except OSError as error:
        pytest.skip("cannot make a cgroup here: %s" % error)
    try:
        yield path
    finally:
        # The daemon has exited by now; what is left is empty.
        for entry in os.listdir(path):
            if os.path.isdir(os.path.join(path, entry)):
                os.rmdir(os.path.join(path, entry))
        os.rmdir(path)


def start(exec_factory, mode, cgroup=None):
    def join_cgroup():
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as procs:
            procs.write("0")
    return exec_factory(LISTENERS, COMMANDS, daemon={"exec_containment": mode},
                        preexec_fn=join_cgroup if cgroup else None)


def wait_for_escape(cgroup):
    """The escaped sleep of the run going on in `cgroup`, found among the
    members of its run-N cgroup."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for entry in os.listdir(cgroup):
            if not entry.startswith("run-"):
                continue
            try:
                with open(os.path.join(cgroup, entry, "cgroup.procs")) as procs:
                    members = [int(pid) for pid in procs.read().split()]
            except OSError:
                continue
            for pid in members:
                try:
                    with open("/proc/%d/cmdline" % pid, "rb") as cmdline:
                        if cmdline.read() == b"/bin/sleep\x0060\x00":
                            return pid
                except OSError:
                    pass
        time.sleep(0.01)
    raise AssertionError("no escaped process showed up in a run cgroup of %s" % cgroup)


def test_cgroup_mode_puts_each_run_in_its_own_cgroup_and_ends_all_of_it(exec_factory, delegated_cgroup):
    daemon = start(exec_factory, "cgroup", delegated_cgroup)
    assert "exec containment: cgroup: each run in its own cgroup under %s" % delegated_cgroup in daemon.stderr_text()
    assert daemon.stats("tcp")["exec_containment"] == "cgroup"

    header, body = run(daemon, "escape")
    assert_ok(header)
    assert gone(int(body))

    # While a run lives, its escape is in the run's own cgroup, not in the
    # daemon's; when it times out, all of it goes, and so does the cgroup.
    with daemon.connect("tcp", timeout=20) as client:
        client.send_request({"cmd": "exec", "name": "escapewait", "id": 1})
        escaped = wait_for_escape(delegated_cgroup)
        assert cgroup_of(escaped).startswith(
            cgroup_of().rstrip("/") + "/" + os.path.basename(delegated_cgroup) + "/run-")
        header, body = client.read_reply()
        assert_error(header, "timeout")
        assert int(body) == escaped
    assert gone(escaped)
    leftover = [entry for entry in os.listdir(delegated_cgroup) if entry.startswith("run-")]
    deadline = time.monotonic() + 5
    while leftover and time.monotonic() < deadline:
        time.sleep(0.05)
        leftover = [entry for entry in os.listdir(delegated_cgroup) if entry.startswith("run-")]
    assert leftover == []
    assert daemon.stop() == 0


def test_cgroup_mode_ends_what_a_killed_daemon_left_at_the_next_start(exec_factory, delegated_cgroup):
    """A daemon killed with SIGKILL supervises nothing any more: its run's
    first process dies with it (PR_SET_PDEATHSIG), but the escape lives on
    in the run's cgroup. The next daemon started there kills it and removes
    the cgroup before it serves."""
    first = start(exec_factory, "cgroup", delegated_cgroup)
    with first.connect("tcp", timeout=20) as client:
        client.send_request({"cmd": "exec", "name": "escapelong", "id": 1})
        escaped = wait_for_escape(delegated_cgroup)
        first.proc.kill()
        first.proc.wait(timeout=10)
    time.sleep(0.2)
    assert running(escaped), "the escape did not outlive the killed daemon: nothing to test"
    assert [entry for entry in os.listdir(delegated_cgroup) if entry.startswith("run-")]
    second = start(exec_factory, "cgroup", delegated_cgroup)
    assert gone(escaped)
    assert [entry for entry in os.listdir(delegated_cgroup) if entry.startswith("run-")] == []
    second.ping("tcp")
    assert second.stop() == 0


def test_cgroup_mode_refuses_to_start_without_a_cgroup_to_divide(exec_factory):
    mine = cgroup_of()
    if cgroup2_root() is not None and mine not in (None, "/"):
        pytest.skip("this process has a cgroup of its own (%s): it may be delegated" % mine)
    daemon = exec_factory(LISTENERS, COMMANDS, daemon={"exec_containment": "cgroup"}, wait_ready=False)
    assert daemon.proc.wait(timeout=20) == 1
    assert 'daemon.exec_containment = "cgroup": no cgroup of its own to divide' in daemon.stderr_text()
    assert "Delegate=yes" in daemon.stderr_text()


def test_subreaper_mode_ends_the_escape_with_the_run(exec_factory):
    daemon = start(exec_factory, "subreaper")
    assert daemon.stats("tcp")["exec_containment"] == "subreaper"
    header, body = run(daemon, "escape")
    assert_ok(header)
    assert gone(int(body))
    header, body = run(daemon, "escapewait")
    assert_error(header, "timeout")
    assert gone(int(body))
    # Two escapes at least; the timed-out sleep 30 too when it outlived its shell.
    assert daemon.stats("tcp")["exec_orphans_killed"] >= 2


def test_process_group_mode_lets_the_escape_outlive_the_run(exec_factory):
    daemon = start(exec_factory, "process_group")
    assert daemon.stats("tcp")["exec_containment"] == "process_group"
    header, body = run(daemon, "escape")
    assert_ok(header)
    escaped = int(body)
    try:
        time.sleep(0.2)
        assert running(escaped)
    finally:
        os.kill(escaped, signal.SIGKILL)
