"""What the judge's test commands see of the host under `--env local`: a network namespace whose
only interface is loopback (nothing outside the machine, and no other address of it, can be
reached), and the spec's CPU count, shown through the cgroup files a container limited to that many
CPUs has (SWE-bench's images run with the spec's `nano_cpus`; tests such as pylint's read them).

In the namespace, every address but loopback behaves as an unroutable one does on a real network:
packets to it are dropped (routed into loopback, where a host that forwards nothing drops them), so
a connect times out, as tests of connect timeouts expect; and names do not resolve (the resolver is
pointed at loopback, where no server answers), so a test that needs the network fails at once,
with a failure the judge reads as `needs network`.

Both need namespaces: as root, `unshare --net --mount`; otherwise a user namespace as well. Where
neither works, the command runs as it is and `Isolation.notes` says what was not done, so the
report can say the network was not cut.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
CFS_PERIOD = 100_000
RESOLV_CONF = Path("/etc/resolv.conf")
# Run inside the new namespaces before the command: bring loopback up (a new network namespace
# starts with it down), route other addresses into it (where `ip` is there to), lay the files over
# the host's, then become the command.
_CHILD = r"""
import fcntl, os, shutil, socket, struct, subprocess, sys
if sys.argv[2] == "net":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    req = struct.pack("16sH14s", b"lo", 0, b"")
    flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, req)[:18])[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 0x1 | 0x40, b""))
    if shutil.which("ip"):
        subprocess.run(["ip", "route", "add", "default", "dev", "lo"], check=True, stdin=subprocess.DEVNULL)
for pair in sys.argv[3:]:
    source, _, target = pair.partition("=")
    subprocess.run(["mount", "--bind", source, target], check=True, stdin=subprocess.DEVNULL)
os.execv("/bin/bash", ["bash", "--noprofile", "--norc", "-c", sys.argv[1]])
"""


@dataclass
class Isolation:
    """How test commands of one instance are wrapped, and what could not be done."""

    prefix: list[str] = field(default_factory=list)
    """`unshare ...` (empty: commands run as they are)."""
    mounts: list[str] = field(default_factory=list)
    """`source=target` bind mounts made inside the namespace."""
    network_cut: bool = False
    cpus: float = 0.0
    """CPUs the tests are shown (0: the host's view is left alone)."""
    notes: list[str] = field(default_factory=list)

    def wrap(self, command: str) -> str:
        """`command` run inside the namespaces (itself when there are none)."""
        if not self.prefix:
            return command
        net = "net" if self.network_cut else "-"
        child = [*self.prefix, sys.executable, "-I", "-c", _CHILD, command, net, *self.mounts]
        return " ".join(shlex.quote(word) for word in child)


def _unshare(net: bool, mount: bool) -> list[str]:
    words = ["unshare"]
    if os.geteuid() != 0:
        words.append("--map-root-user")
    if net:
        words.append("--net")
    if mount:
        words += ["--mount", "--propagation", "private"]
    return [*words, "--"]


def _works(prefix: tuple[str, ...], mounts: tuple[str, ...], net: bool) -> str:
    """'' when commands can run under `prefix` with `mounts`; else what went wrong."""
    probe = Isolation(prefix=list(prefix), mounts=list(mounts), network_cut=net).wrap("exit 0")
    try:
        proc = subprocess.run(
            ["bash", "-c", probe], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    return "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["failed"])[-1]


def cgroup_cpu_files(cpus: float, root: Path = CGROUP) -> dict[str, str]:
    """{host cgroup file: what it says in a container limited to `cpus`}, for the files this host has
    (cgroup v1's quota, period and shares, cgroup v2's cpu.max)."""
    quota = round(cpus * CFS_PERIOD)
    wanted = {
        root / "cpu" / "cpu.cfs_quota_us": f"{quota}\n",
        root / "cpu" / "cpu.cfs_period_us": f"{CFS_PERIOD}\n",
        root / "cpu" / "cpu.shares": f"{max(2, round(cpus * 1024))}\n",
        root / "cpu.max": f"{quota} {CFS_PERIOD}\n",
    }
    return {str(path): text for path, text in wanted.items() if path.is_file()}


def host_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def isolation(*, cut_network: bool, cpus: float, scratch: Path) -> Isolation:
    """The isolation for one instance's tests; `scratch` holds the CPU files laid over the host's."""
    iso = Isolation(cpus=0.0)
    mounts: list[str] = []
    if cpus > 0:
        if host_cpus() < cpus:
            iso.notes.append(f"the spec gives {cpus:g} CPUs; this host has {host_cpus()}")
        scratch.mkdir(parents=True, exist_ok=True)
        for i, (target, text) in enumerate(sorted(cgroup_cpu_files(cpus).items())):
            source = scratch / f"cpu-{i}-{Path(target).name}"
            source.write_text(text)
            mounts.append(f"{source}={target}")
    shown_cpus = cpus if mounts else 0.0
    if not cut_network and not mounts:
        return iso
    if cut_network and RESOLV_CONF.exists():
        scratch.mkdir(parents=True, exist_ok=True)
        (scratch / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        mounts.append(f"{scratch / 'resolv.conf'}={RESOLV_CONF}")
    if shutil.which("unshare") is None:
        reason = "unshare is not installed"
    else:
        prefix = _unshare(cut_network, bool(mounts))
        reason = _works(tuple(prefix), tuple(mounts), cut_network)
        if not reason:
            iso.prefix, iso.mounts, iso.network_cut = prefix, mounts, cut_network
            iso.cpus = shown_cpus
            return iso
        if mounts and cut_network:  # the files laid over may be what failed: keep the network cut
            prefix = _unshare(True, False)
            if not _works(tuple(prefix), (), True):
                iso.prefix, iso.network_cut = prefix, True
                if shown_cpus:
                    iso.notes.append(f"the spec's {cpus:g} CPUs not shown to the tests: {reason}")
                return iso
    if cut_network:
        iso.notes.append(f"network not cut (no network namespace: {reason})")
    if shown_cpus:
        iso.notes.append(f"the spec's {cpus:g} CPUs not shown to the tests: {reason}")
    return iso
