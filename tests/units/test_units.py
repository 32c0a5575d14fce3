"""The systemd units as systemd itself reads them: `systemd-analyze verify`
finds no error, and `systemd-analyze security --offline=true` scores each
unit at or under its target exposure (framed.service 1.4, with Delegate=yes
for exec containment; the isolated
socket-activated profile 0.5).

The units are rendered from systemd/*.in the way meson does, with ExecStart
pointing at the daemon under test, so verify finds a real executable.
"""

import os
import re
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FRAMED_BIN = os.path.abspath(os.environ.get("FRAMED_BIN") or os.path.join(REPO, "build", "daemon", "framed"))
ANALYZE = shutil.which("systemd-analyze")

TARGETS = {"framed.service": 1.4, "framed-isolated.service": 0.5}

pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (apt install systemd)")


def render(tmp_path, name):
    text = open(os.path.join(REPO, "systemd", name + ".in")).read()
    text = (text.replace("@sbindir@", os.path.dirname(FRAMED_BIN))
                .replace("@sysconfdir@", "/etc").replace("@docdir@", "/usr/share/doc/framed"))
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def units(tmp_path):
    rendered = {name: render(tmp_path, name) for name in TARGETS}
    for socket_unit in ("framed.socket", "framed-isolated.socket"):
        shutil.copy(os.path.join(REPO, "systemd", socket_unit), tmp_path / socket_unit)
    return rendered


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_exposure_meets_its_target(units, name):
    result = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(units[name])],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= TARGETS[name], result.stdout


@pytest.mark.parametrize("name", sorted(TARGETS) + ["framed.socket", "framed-isolated.socket"])
def test_verify_finds_nothing_wrong(units, tmp_path, name):
    path = tmp_path / name
    result = subprocess.run([ANALYZE, "verify", "--man=no", str(path)], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    # verify also reports on units it loads along (network.target and the
    # like, which may be absent in a container): only lines about ours count.
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "framed" in line]
    problems = [line for line in ours if re.search(r"(?i)error|unknown|invalid|not executable|ignoring|failed", line)]
    assert not problems, result.stdout + result.stderr


def test_reload_checks_the_config_before_signalling(units):
    text = units["framed.service"].read_text()
    reloads = [line for line in text.splitlines() if line.startswith("ExecReload=")]
    assert len(reloads) == 2 and "--check-config" in reloads[0] and "-HUP" in reloads[1], reloads


def test_install_lays_down_the_service_and_keeps_an_edited_config(tmp_path):
    builddir = os.path.dirname(os.path.dirname(FRAMED_BIN))
    prefix = subprocess.run(["meson", "introspect", "--buildoptions", builddir], capture_output=True, text=True,
                            timeout=60)
    options = {o["name"]: o["value"] for o in __import__("json").loads(prefix.stdout)}
    root = tmp_path / "root"

    def install():
        result = subprocess.run(["meson", "install", "-C", builddir, "--no-rebuild", "--destdir", str(root)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr

    install()
    base = str(root) + options["prefix"]
    sysconfdir = options["sysconfdir"] if options["sysconfdir"].startswith("/") else \
        os.path.join(options["prefix"], options["sysconfdir"])
    config = str(root) + sysconfdir + "/framed/framed.toml"
    for path in ["/sbin/framed", "/lib/systemd/system/framed.service", "/lib/systemd/system/framed.socket",
                 "/lib/systemd/system/framed-isolated.service", "/share/man/man8/framed.8",
                 "/share/man/man5/framed.toml.5", "/share/doc/framed/README.md",
                 "/bin/framectl", "/share/man/man1/framectl.1"]:
        assert os.path.exists(base + path), path
    assert open(config).read() == open(config + ".example").read()
    with open(config, "a") as edited:
        edited.write("# the operator's edit\n")
    install()
    assert open(config).read().endswith("# the operator's edit\n"), "an edited config was overwritten"
    unit = open(base + "/lib/systemd/system/framed.service").read()
    assert "ExecStart=%s/sbin/framed --config %s/framed/framed.toml" % (options["prefix"], sysconfdir) in unit
