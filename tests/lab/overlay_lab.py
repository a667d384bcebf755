# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lab of real Debian 12 hosts on one machine, for tests, the demo and benchmarks.

Each host is a systemd-nspawn container booting systemd, with its own network namespace,
hostname, machine-id and disk (an overlay over one cached image). All hosts hang off one
underlay bridge that lives in a "switch" network namespace of its own, with addresses from
198.18.0.0/15. Nothing is ever created in the machine's root network namespace: every link is
made with `ip -n <lab namespace>`.

Every resource carries the lab's name, and everything the lab creates is recorded in its
state file before it is created, so `down` removes exactly that and nothing else, even after a
failed `up`.

    overlay_lab.py up --name demo --hosts 3     # prints the inventory path
    overlay_lab.py up --name r --hosts 4 --segments 2   # two L2 segments joined by a router
    overlay_lab.py reboot --name demo node2     # a real reboot: all kernel network state gone
    overlay_lab.py move --name r node2 --segment 0      # live: another segment, another address
    overlay_lab.py up --name n --hosts 4 --nat-hosts 2  # node3, node4 on a private segment behind a 1:1 NAT
    overlay_lab.py remap --name n node3         # the NAT gives node3 another public address
    overlay_lab.py shell --name demo node1      # a root shell inside node1
    overlay_lab.py controller --name demo -- ansible-playbook -i /var/lib/overlay-mesh-lab/demo/inventory-ssh.yml ...
                                                # over SSH as user ops with sudo, from the switch's namespace
    overlay_lab.py down --name demo
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

LAB_ROOT = Path(os.environ.get("OVERLAY_LAB_ROOT", "/var/lib/overlay-mesh-lab"))
IMAGE_CACHE = Path(os.environ.get("OVERLAY_LAB_CACHE", "/var/cache/overlay-mesh-lab"))
SUITE = "bookworm"
# What every lab host carries. Changing this list (or IMAGE_RECIPE_VERSION) builds a new image.
IMAGE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "python3", "python3-pyroute2", "iproute2", "nftables",
    "iputils-ping", "iperf3", "procps", "tcpdump", "containernetworking-plugins", "ethtool",
    "kmod", "less",
    # the wireguard backend's userspace path (this machine's kernel has no wireguard module) and wg(8) for tests
    "wireguard-go", "wireguard-tools",
    # the playbooks become root (sudo), as over SSH with a sudo user: sshd and user "ops" (SSH_USER)
    "sudo", "openssh-server",
)
IMAGE_RECIPE_VERSION = "2"
# The "runtimes" image adds real container runtimes (docker.io, podman with its CNI backend) and a
# static busybox to import as a local container image (no registry is reachable from a lab).
RUNTIME_PACKAGES = ("docker.io", "podman", "busybox-static", "iptables")
VARIANTS = {"base": IMAGE_PACKAGES, "runtimes": IMAGE_PACKAGES + RUNTIME_PACKAGES}
# Runtimes inside an nspawn host: nspawn mounts cgroup v1 controllers read-only, so the host gets
# the unified hierarchy (a writable cgroup2 of its own: runc and podman create their cgroups
# there); runc needs keyctl (session keyring) and bpf (cgroup v2 device rules), which nspawn's
# seccomp filter denies by default. Nothing more (no extra capability, no module, no bind mount).
RUNTIMES_NSPAWN_ARGS = ("--system-call-filter=@keyring bpf",)
RUNTIMES_NSPAWN_ENV = {"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
# Storage on an overlayfs root: overlay2 cannot stack on it and there is no /dev/fuse, so vfs.
# podman: runc (crun raises RLIMIT_MEMLOCK, which needs CAP_SYS_RESOURCE that some machines lack),
# no pids limit (the pids controller may be bound to v1 on the machine), and NET_RAW for ping.
RUNTIMES_FILES = {
    "etc/docker/daemon.json": '{\n  "storage-driver": "vfs"\n}\n',
    "etc/containers/storage.conf": '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\n'
                                   'graphroot = "/var/lib/containers/storage"\n',
    "etc/containers/containers.conf": '[containers]\npids_limit = 0\ndefault_capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", '
                                      '"FSETID", "KILL", "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", '
                                      '"SYS_CHROOT"]\n\n[engine]\nruntime = "runc"\n',
    # a container whose PID 1 ignores SIGTERM must not hold a host's shutdown for 90 s
    "etc/systemd/system.conf.d/lab-stop-timeout.conf": "[Manager]\nDefaultTimeoutStopSec=10s\n",
}
UNDERLAY_RANGE = ipaddress.ip_network("198.18.0.0/15")
# IPv6 underlays (up --underlay ipv6|dual): a /48 of the documentation prefix chosen from the lab's
# name, one /64 per segment; static addresses, router advertisements and autoconfiguration off.
UNDERLAY_RANGE6 = ipaddress.ip_network("2001:db8::/32")
UNDERLAYS = ("ipv4", "ipv6", "dual")
FIRST_HOST_OFFSET = 11  # node1 = .11; .1 is the switch's own address (the hosts' default gateway)
BOOT_TIMEOUT = 90
STOP_TIMEOUT = 30
LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
HOST_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root", "TERM": "xterm"}
# inotify: every booted host holds 8 instances (systemd 5, systemd-logind 1, agetty 1 as root,
# dbus-daemon 1 as messagebus; counted as distinct anon_inode:inotify files under /proc/*/fd, the
# same while booting, after boot and during a site run) and about 26 watches. The kernel's limits
# are per user, and every lab host's root is the machine's root, so labs side by side add up:
# too few instances and hosts fail to boot with "Too many open files".
# Every host has user "ops", in group sudo (sudo asks for its password), reached over SSH with the
# lab's own key: as ops teams reach their hosts. A lab password for a lab no one else can reach.
SSH_USER = "ops"
SSH_PASSWORD = "overlay-lab"
INOTIFY_SYSCTL_DIR = Path("/proc/sys/fs/inotify")
INOTIFY_PER_HOST = {"max_user_instances": 9, "max_user_watches": 40}  # 8 and 26; containerd adds 1 and 1 (runtimes)
INOTIFY_SPARE = {"max_user_instances": 32, "max_user_watches": 1024}  # for whatever the machine starts meanwhile
INOTIFY_STEP = {"max_user_instances": 64, "max_user_watches": 8192}  # a raised limit is a multiple of this
# A segment behind a 1:1 NAT (up --nat-hosts N): the last N hosts sit on a private segment (the /24
# after the lab's) behind a router namespace ovl-<lab>-nat whose public leg is NAT_ROUTER_OFFSET on the
# lab's segment. Each private host gets a public address of its own there, NAT_PUBLIC_OFFSET + its
# number at first (node3: .131); `remap` moves it to the next free one. Hosts stay below them.
NAT_ROUTER_OFFSET = 2
NAT_PUBLIC_OFFSET = 128
NAT_MAX_HOSTS = NAT_PUBLIC_OFFSET - FIRST_HOST_OFFSET
NAT_TABLE = "overlay_lab_nat"


class LabError(Exception):
    pass


def run(argv, check=True, **kwargs):
    """Run a command, raising LabError with its stderr when it fails."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(map(str, argv))} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _digest(*parts) -> bytes:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).digest()


# ---- processes: identified by PID and start time, so a recycled PID is never signalled -------

def process_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":  # a zombie has exited already
        return None
    return fields[19]


def is_same_process(pid: int | None, start: str | None) -> bool:
    return bool(pid) and start is not None and process_start_time(pid) == start


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # the task exited meanwhile
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def cgroup_hierarchies() -> list[str]:
    """Mount points of the cgroup hierarchies systemd manages: cgroup2, and v1's name=systemd."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, tail = line.split(" - ", 1)
        fstype, options = (tail.split() + ["", "", ""])[0:3:2]
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options.split(",")):
            found.append(fields.split()[4])
    return found


def host_cgroups(machine: str) -> list[str]:
    """One cgroup per host. systemd-nspawn --keep-unit would otherwise put every host into the
    caller's cgroup, and hosts booting side by side then fail units with status 219/CGROUP."""
    return [os.path.join(mount, "overlay-mesh-lab", machine) for mount in cgroup_hierarchies()]


def remove_cgroup(path: str) -> None:
    """Remove a host's cgroup and the sub-cgroups its systemd made. Any process still in it was
    started by that host, so it is killed first."""
    if not os.path.isdir(path):
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while True:
        left = [int(pid) for procs in Path(path).rglob("cgroup.procs") for pid in procs.read_text().split()]
        if not left:
            break
        if time.monotonic() > deadline:
            raise LabError(f"processes {left} in {path} do not exit")
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    for root, dirs, unused_files in os.walk(path, topdown=False):
        for name in dirs:
            os.rmdir(os.path.join(root, name))
    os.rmdir(path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))  # the shared parent, once the last lab host is gone


def spawn_detached(argv: list[str], log_path: Path, cgroups: list[str] = (), env: dict | None = None) -> int:
    """Start argv in a new session and the given cgroups, not as our child (so it is never left a
    zombie), and return its PID."""
    for cgroup in cgroups:
        os.makedirs(cgroup, exist_ok=True)
    read_end, write_end = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:  # pragma: no cover - runs in the forked child
        status = 1
        try:
            os.close(read_end)
            for cgroup in cgroups:
                Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))
            with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
                proc = subprocess.Popen(argv, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
            os.write(write_end, str(proc.pid).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        pid_text = pipe.read()
    os.waitpid(intermediate, 0)
    if not pid_text:
        raise LabError(f"could not start {argv[0]}")
    return int(pid_text)


# ---- inotify limits: enough for every lab host running on the machine ------------------------

def inotify_need(key: str, labs: dict, machine_usage: int) -> int:
    """What the per-user limit `key` (max_user_instances or max_user_watches) must allow for: the
    machine's own use (root's processes outside any lab), every lab at the larger of its hosts'
    planned share and what its hosts hold now (the lab being booted included), and spare.
    labs: {lab name: (number of hosts, what its hosts hold now)}."""
    in_labs = sum(max(hosts * INOTIFY_PER_HOST[key], held) for hosts, held in labs.values())
    return machine_usage + in_labs + INOTIFY_SPARE[key]


def inotify_raise_to(limit: int, need: int, step: int) -> int | None:
    """The value to raise a limit to (need rounded up to a multiple of step), or None when the limit
    is enough already. A limit is never lowered."""
    if limit >= need:
        return None
    return -(-need // step) * step


def inotify_usage(machines: dict) -> tuple[dict, dict]:
    """Count inotify instances and watches held now: by root outside lab hosts (the machine's own
    use) and, per lab, by every process in its hosts' cgroups (whatever the user).
    machines: {machine name (a host's cgroup): lab name}. Returns ({key: n}, {lab: {key: n}})."""
    machine = dict.fromkeys(INOTIFY_PER_HOST, 0)
    labs = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = [fd for fd in (proc / "fd").iterdir() if os.readlink(fd) == "anon_inode:inotify"]
            if not fds:
                continue
            watches = sum((proc / "fdinfo" / fd.name).read_text().count("inotify wd:") for fd in fds)
            cgroups = (proc / "cgroup").read_text()
            euid = next(line.split()[2] for line in (proc / "status").read_text().splitlines() if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue  # gone meanwhile
        found = re.search(r"/overlay-mesh-lab/([^/\n]+)", cgroups)
        lab = machines.get(found.group(1)) if found else None
        if lab is not None:
            counts = labs.setdefault(lab, dict.fromkeys(INOTIFY_PER_HOST, 0))
        elif euid == "0":
            counts = machine
        else:
            continue
        counts["max_user_instances"] += len(fds)
        counts["max_user_watches"] += watches
    return machine, labs


def ensure_inotify_limits(states: dict, reason: str, log=print) -> None:
    """Raise fs.inotify.max_user_instances / max_user_watches when they are too low for the labs
    that will run (states: {lab name: its state}, the lab being booted included); fail with the
    sysctl and the value needed when they cannot be raised."""
    labs = {name: len(state["hosts"]) for name, state in states.items()}
    machines = {host["machine"]: name for name, state in states.items() for host in state["hosts"].values()}
    machine_usage, lab_usage = inotify_usage(machines)
    for key, step in INOTIFY_STEP.items():
        path = INOTIFY_SYSCTL_DIR / key
        limit = int(path.read_text())
        counts = {name: (hosts, lab_usage.get(name, {}).get(key, 0)) for name, hosts in labs.items()}
        need = inotify_need(key, counts, machine_usage[key])
        target = inotify_raise_to(limit, need, step)
        if target is None:
            continue
        why = (f"{reason}: {sum(labs.values())} lab hosts in {len(labs)} lab(s) x {INOTIFY_PER_HOST[key]} per host"
               f" (or what they hold now), the machine's own {machine_usage[key]}, {INOTIFY_SPARE[key]} spare = {need}"
               f" (the limit is per user and every lab host runs as root)")
        try:
            path.write_text(f"{target}\n")
        except OSError as err:
            raise LabError(f"sysctl fs.inotify.{key} is {limit}, too low for {why}, and it cannot be raised ({err});"
                           f" run `sysctl -w fs.inotify.{key}={target}` as root") from err
        log(f"raised sysctl fs.inotify.{key} from {limit} to {target}: {why}")


# ---- the image -------------------------------------------------------------------------------

def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (so the lab follows local mirror or proxy settings)."""
    if os.environ.get("OVERLAY_LAB_MIRROR"):
        return os.environ["OVERLAY_LAB_MIRROR"]
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]
    for source in sources:
        if not source.is_file():
            continue
        for line in source.read_text().splitlines():
            for uri in re.findall(r"(https?://\S+)", line.split("#", 1)[0]):
                if not uri.rstrip("/").endswith("-security"):
                    return uri
    raise LabError("no Debian mirror found in /etc/apt/sources.list(.d); set OVERLAY_LAB_MIRROR")


def image_id(variant: str = "base") -> str:
    return _digest(SUITE, IMAGE_RECIPE_VERSION, *sorted(VARIANTS[variant])).hex()[:12]


def image_dir(variant: str = "base") -> Path:
    """Where an image variant is cached: debian-bookworm-<id> (base), debian-bookworm-runtimes-<id>."""
    return IMAGE_CACHE / (f"debian-{SUITE}-{image_id(variant)}" if variant == "base" else f"debian-{SUITE}-{variant}-{image_id(variant)}")


def ensure_image(log=print, variant: str = "base") -> Path:
    """Return the cached image's root, building it once with debootstrap (under a lock)."""
    if variant not in VARIANTS:
        raise LabError(f"image variant {variant!r}: one of {', '.join(VARIANTS)}")
    image = image_dir(variant)
    rootfs = image / "rootfs"
    if (image / "complete").exists():
        return rootfs
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    with open(IMAGE_CACHE / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (image / "complete").exists():
            return rootfs
        if image.exists():
            shutil.rmtree(image)
        log(f"building lab image {image} (debootstrap {SUITE}, one to two minutes; cached afterwards)")
        started = time.monotonic()
        partial = image.with_name(image.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir()
        packages = VARIANTS[variant]
        run(["debootstrap", "--variant=minbase", "--include=" + ",".join(packages), SUITE, partial / "rootfs", debian_mirror()])
        _prepare_image(partial / "rootfs", variant)
        (partial / "packages").write_text("\n".join(packages) + "\n")
        (partial / "complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
        partial.rename(image)
        log(f"image built in {time.monotonic() - started:.0f} s")
        # An older image of this variant goes, unless a lab still runs on it (its hosts' root is an overlay on it).
        in_use = {str(Path(Lab(name).load()["image"]).parent) for name in list_labs() if Lab(name).load()}
        pattern = re.compile(re.escape(image.name[:-12]) + "[0-9a-f]{12}$")
        for stale in IMAGE_CACHE.glob(f"debian-{SUITE}-*"):
            if stale != image and pattern.match(stale.name) and (stale / "complete").exists() and str(stale) not in in_use:
                shutil.rmtree(stale)
    return rootfs


def _prepare_image(rootfs: Path, variant: str = "base") -> None:
    # Every host gets its own machine-id and hostname on its own disk; the image carries none,
    # so hosts never share one (a shared machine-id would give all hosts the same udev MACs).
    (rootfs / "etc/machine-id").write_text("")
    (rootfs / "etc/hostname").unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (rootfs / "var/lib/dbus/machine-id").unlink()
    # Nothing in the image may talk to the outside on its own.
    for unit in ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer", "podman-auto-update.timer"):
        (rootfs / "etc/systemd/system" / unit).unlink(missing_ok=True)
        (rootfs / "etc/systemd/system" / unit).symlink_to("/dev/null")
    shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
    # sshd: every host makes its own host keys at its first boot (the image carries none).
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    dropin = rootfs / "etc/systemd/system/ssh.service.d/lab-host-keys.conf"
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n")
    run(["chroot", rootfs, "useradd", "--create-home", "--shell", "/bin/bash", "--groups", "sudo", SSH_USER])
    run(["chroot", rootfs, "chpasswd"], input=f"{SSH_USER}:{SSH_PASSWORD}\n")
    if variant == "runtimes":
        for relative, text in RUNTIMES_FILES.items():
            (rootfs / relative).parent.mkdir(parents=True, exist_ok=True)
            (rootfs / relative).write_text(text)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)


# ---- the lab ---------------------------------------------------------------------------------

def check_nat_hosts(nat_hosts: int, count: int, segments: int, underlay: str) -> None:
    """--nat-hosts: IPv4 only (the NAT maps IPv4 addresses), with one segment, hosts below the public addresses."""
    if nat_hosts == 0:
        return
    if not 0 < nat_hosts <= count:
        raise LabError(f"--nat-hosts {nat_hosts}: 0 to --hosts ({count})")
    if underlay != "ipv4" or segments != 1:
        raise LabError(f"--nat-hosts {nat_hosts}: only with --underlay ipv4 and one segment (not {underlay}, {segments})")
    if count > NAT_MAX_HOSTS:
        raise LabError(f"--nat-hosts {nat_hosts}: a lab with a NAT has at most {NAT_MAX_HOSTS} hosts (not {count})")


class Lab:
    def __init__(self, name: str):
        if not LAB_NAME_RE.match(name):
            raise LabError(f"lab name {name!r}: use 1-20 characters a-z, 0-9 and '-', starting with a letter")
        self.name = name
        self.dir = LAB_ROOT / name
        self.state_path = self.dir / "state.json"
        self.inventory_path = self.dir / "inventory.yml"
        self.ssh_inventory_path = self.dir / "inventory-ssh.yml"
        self.ssh_key_path = self.dir / "ssh" / "id_ed25519"
        self.known_hosts_path = self.dir / "ssh" / "known_hosts"
        self.switch_netns = f"ovl-{name}-sw"
        self.router_netns = f"ovl-{name}-rt"

    # -- state --
    def load(self) -> dict | None:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None

    def save(self, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_path)

    @contextlib.contextmanager
    def locked(self):
        LAB_ROOT.mkdir(parents=True, exist_ok=True)
        with open(LAB_ROOT / f".{self.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def subnet(self) -> ipaddress.IPv4Network:
        """A /24 of 198.18.0.0/15 chosen from the lab's name: two labs rarely share one, and even
        when they do their switches are separate namespaces, so they never meet."""
        return self.segment_subnets(1)[0]

    def segment_subnets(self, count: int) -> list:
        """The /24 of each underlay segment: consecutive, from the one the lab's name picks."""
        override = os.environ.get("OVERLAY_LAB_SUBNET")
        if override:
            net = ipaddress.ip_network(override)
            if not net.subnet_of(UNDERLAY_RANGE):
                raise LabError(f"OVERLAY_LAB_SUBNET {net} is not inside {UNDERLAY_RANGE}")
            if count == 1:
                return [net]
            pool = list(UNDERLAY_RANGE.subnets(new_prefix=24))
            index = pool.index(ipaddress.ip_network(f"{net.network_address}/24", strict=False))
        else:
            pool = list(UNDERLAY_RANGE.subnets(new_prefix=24))
            index = int.from_bytes(_digest("subnet", self.name)[:2], "big") % len(pool)
        return [pool[(index + segment) % len(pool)] for segment in range(count)]

    def segment_subnets6(self, count: int) -> list:
        """The IPv6 /64 of each underlay segment, in the /48 of 2001:db8::/32 the lab's name picks."""
        site = int.from_bytes(_digest("subnet6", self.name)[:2], "big")
        base = int(UNDERLAY_RANGE6.network_address) + (site << 80)
        return [ipaddress.ip_network((base + (segment << 64), 64)) for segment in range(count)]

    def plan_host(self, index: int, segments, segments6=None) -> dict:
        """Host number index (node<index>), on segment (index - 1) % len(segments). segments: the
        primary family's subnets; segments6: IPv6 subnets beside IPv4 ones (a dual underlay)."""
        if isinstance(segments, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            segments = [segments]
        segment = (index - 1) % len(segments)
        subnet = segments[segment]
        extra = {}
        if segments6:
            subnet6 = segments6[segment]
            extra = {"address6": str(subnet6.network_address + FIRST_HOST_OFFSET + index - 1), "prefixlen6": subnet6.prefixlen}
        host = f"node{index}"
        mac_tail = _digest("mac", self.name)[:3] + index.to_bytes(2, "big")
        return {
            "segment": segment,
            "name": host,
            "netns": f"ovl-{self.name}-{host}",
            "machine": f"ovl-{self.name}-{host}",
            "switch_port": host,
            "mac": ":".join(f"{b:02x}" for b in b"\x02" + mac_tail),  # locally administered, unicast
            "address": str(subnet.network_address + FIRST_HOST_OFFSET + index - 1),
            "prefixlen": subnet.prefixlen,
            "machine_id": uuid.UUID(bytes=_digest("machine-id", self.name, host)[:16]).hex,
            "disk": str(self.dir / "hosts" / host / "disk"),
            "log": str(self.dir / "hosts" / host / "console.log"),
            "nspawn_pid": None,
            "nspawn_start": None,
            **extra,
        }

    # -- up --
    def up(self, count: int, log=print, segments: int = 1, variant: str = "base", underlay: str = "ipv4", nat_hosts: int = 0) -> dict:
        if not 1 <= count <= 200:
            raise LabError(f"--hosts {count}: a lab has 1 to 200 hosts")
        if underlay not in UNDERLAYS:
            raise LabError(f"--underlay {underlay}: one of {', '.join(UNDERLAYS)}")
        if not 1 <= segments <= min(count, 8):
            raise LabError(f"--segments {segments}: a lab has 1 to 8 segments, at most one per host")
        check_nat_hosts(nat_hosts, count, segments, underlay)
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces and systemd-nspawn)")
        for tool in ("systemd-nspawn", "debootstrap", "nsenter", "ip"):
            if not shutil.which(tool):
                raise LabError(f"{tool} not found: run `make deps` (apt packages systemd-container, debootstrap, iproute2)")
        image = ensure_image(log, variant)
        with self.locked():
            state = self.load()
            if state:
                if len(state["hosts"]) == count and len(self.routed_segments(state)) == segments and \
                        sum(1 for h in state["hosts"].values() if h.get("public_address")) == nat_hosts and \
                        state.get("variant", "base") == variant and state.get("underlay", "ipv4") == underlay and \
                        all(self.host_running(h) for h in state["hosts"].values()):
                    log(f"lab {self.name} is already up")
                    return state
                raise LabError(f"lab {self.name} exists but is not as asked or not all hosts run; run `down --name {self.name}` first")
            started = time.monotonic()
            # subnet, gateway, address: the underlay's first family (IPv6 on an ipv6 underlay);
            # subnet6, gateway6, address6: IPv6 beside IPv4 (dual)
            subnets = self.segment_subnets6(segments) if underlay == "ipv6" else self.segment_subnets(segments)
            subnets6 = self.segment_subnets6(segments) if underlay == "dual" else None
            subnet = subnets[0]
            state = {
                "name": self.name,
                "image": str(image),
                "variant": variant,
                "underlay": underlay,
                # segment 0 (the only one by default)
                "subnet": str(subnet),
                "gateway": str(subnet.network_address + 1),
                "segments": [dict({"subnet": str(net), "gateway": str(net.network_address + 1),
                                   "bridge": "underlay" if segments == 1 else f"seg{number}"},
                                  **({"subnet6": str(subnets6[number]), "gateway6": str(subnets6[number].network_address + 1)}
                                     if subnets6 else {}))
                             for number, net in enumerate(subnets)],
                # with several segments, a router namespace routes between them
                "router_netns": self.router_netns if segments > 1 else None,
                "switch_netns": self.switch_netns,
                "hosts": {},
            }
            if nat_hosts:
                self.plan_nat(state)
            for index in range(1, count + 1):
                if index > count - nat_hosts:
                    host = self.plan_nat_host(index, state)
                else:
                    host = self.plan_host(index, subnets, subnets6)
                state["hosts"][host["name"]] = host
            self.save(state)  # recorded before anything exists, so `down` can undo a failed `up`
            try:
                self._ensure_inotify(state, f"lab {self.name} boots {count} hosts", log)
            except LabError:
                shutil.rmtree(self.dir)  # nothing was created yet
                raise
            self._create_switch(state)
            if state.get("nat_netns"):
                self._create_nat_router(state)
            self._prepare_ssh_key()
            for host in state["hosts"].values():
                self._create_host_network(state, host)
                self._prepare_disk(host)
                self._boot(state, host)
            self.save(state)
            self._wait_booted(state, state["hosts"].values())
            for host in state["hosts"].values():
                self._prepare_ssh(state, host)
            self.save(state)
            self.write_inventory(state)
            log(f"lab {self.name}: {count} hosts up in {time.monotonic() - started:.1f} s on "
                f"{', '.join(segment['subnet'] for segment in state['segments'])}"
                + (f" ({state['segments'][-1]['subnet']} behind a 1:1 NAT)" if nat_hosts else ""))
            return state

    def _ensure_inotify(self, state: dict, reason: str, log) -> None:
        """Every lab on the machine, this one included, must fit the inotify limits."""
        states = {self.name: state}
        for name in list_labs():
            with contextlib.suppress(LabError, ValueError, OSError):
                other = Lab(name).load() if name != self.name else None
                if other:
                    states[name] = other
        ensure_inotify_limits(states, reason, log)

    @staticmethod
    def segments_of(state: dict) -> list:
        """The lab's segments (a lab made before segments existed has one, on bridge "underlay")."""
        return state.get("segments") or [{"subnet": state["subnet"], "gateway": state["gateway"], "bridge": "underlay"}]

    @classmethod
    def routed_segments(cls, state: dict) -> list:
        """The segments hosts are spread over (and `move` moves between): all but the NAT's private one."""
        return [segment for segment in cls.segments_of(state) if not segment.get("nat")]

    # -- a segment behind a 1:1 NAT --
    def plan_nat(self, state: dict) -> None:
        """Add the NAT router and its private segment (the /24 after the lab's) to a planned state: the
        segment comes last, its bridge "nat" in the switch namespace, its gateway the router's private leg."""
        private = self.segment_subnets(2)[1]
        state["nat_netns"] = f"ovl-{self.name}-nat"
        state["nat_router_address"] = str(ipaddress.ip_network(state["subnet"]).network_address + NAT_ROUTER_OFFSET)
        state["segments"].append({"subnet": str(private), "gateway": str(private.network_address + 1), "bridge": "nat", "nat": True})

    def plan_nat_host(self, index: int, state: dict) -> dict:
        """Host node<index> on the private segment, with its first public address on the lab's segment."""
        number = len(state["segments"]) - 1
        host = self.plan_host(index, [ipaddress.ip_network(state["segments"][number]["subnet"])])
        host["segment"] = number
        host["public_address"] = str(ipaddress.ip_network(state["subnet"]).network_address + NAT_PUBLIC_OFFSET + index)
        return host

    @staticmethod
    def nat_rules(state: dict) -> str:
        """The NAT router's whole nftables table, replaced atomically: each private host's address is
        rewritten to its public one on the way out (source) and back on the way in (destination).
        Stateless, by address only: UDP tunnels both ways (VXLAN source ports vary per flow), a remap
        applies to the next packet (conntrack entries of the old mapping, kept fresh by a tunnel that
        never goes idle, would outlive it), and two private hosts reach each other at their public
        addresses through the router (hairpin)."""
        pre = post = ""
        for host in state["hosts"].values():
            if host.get("public_address"):
                pre += f"    ip daddr {host['public_address']} ip daddr set {host['address']}\n"
                post += f"    ip saddr {host['address']} ip saddr set {host['public_address']}\n"
        return (f"table ip {NAT_TABLE} {{}}\ndelete table ip {NAT_TABLE}\ntable ip {NAT_TABLE} {{\n"
                f"  chain pre {{\n    type filter hook prerouting priority raw; policy accept;\n{pre}  }}\n"
                f"  chain post {{\n    type filter hook postrouting priority srcnat; policy accept;\n{post}  }}\n}}\n")

    def _create_nat_router(self, state: dict) -> None:
        """A router namespace between the lab's segment (its public leg "pub") and the private one
        ("priv"). It holds every public address on "pub" (so it answers ARP for them) and rewrites
        them with nat_rules(). Its default route is the lab's gateway, the switch, which never
        forwards: nothing leaves the lab."""
        nat, sw = state["nat_netns"], state["switch_netns"]
        public, private = self.segments_of(state)[0], next(s for s in self.segments_of(state) if s.get("nat"))
        run(["ip", "netns", "add", nat])
        run(["ip", "-n", nat, "link", "set", "lo", "up"])
        run(["ip", "netns", "exec", nat, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
             "net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0"])
        for leg, port, segment in (("pub", "natpub", public), ("priv", "natpriv", private)):
            run(["ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", leg, "netns", nat])
            run(["ip", "-n", sw, "link", "set", port, "master", segment["bridge"], "up"])
            run(["ip", "-n", nat, "link", "set", leg, "up"])
        prefixlen = ipaddress.ip_network(public["subnet"]).prefixlen
        run(["ip", "-n", nat, "addr", "add", f"{state['nat_router_address']}/{prefixlen}", "dev", "pub", "nodad"])
        run(["ip", "-n", nat, "addr", "add", f"{private['gateway']}/{ipaddress.ip_network(private['subnet']).prefixlen}",
             "dev", "priv", "nodad"])
        run(["ip", "-n", nat, "route", "add", "default", "via", public["gateway"], "dev", "pub"])
        for host in state["hosts"].values():
            if host.get("public_address"):
                run(["ip", "-n", nat, "addr", "add", f"{host['public_address']}/32", "dev", "pub", "nodad"])
        run(["ip", "netns", "exec", nat, "nft", "-f", "-"], input=self.nat_rules(state))

    def remap(self, host_name: str, public_address: str | None = None, log=print) -> dict:
        """The NAT gives a private host another public address (the next free one unless given), live."""
        with self.locked():
            state = self.load()
            if not state or host_name not in state["hosts"]:
                raise LabError(f"lab {self.name} has no host {host_name}")
            host = state["hosts"][host_name]
            if not host.get("public_address"):
                raise LabError(f"{host_name} of lab {self.name} is not behind the NAT (up --nat-hosts)")
            old = host["public_address"]
            new = public_address or self.next_public_address(state, old)
            self.check_public_address(state, host_name, new)
            nat = state["nat_netns"]
            run(["ip", "-n", nat, "addr", "add", f"{new}/32", "dev", "pub", "nodad"])
            host["public_address"] = new
            run(["ip", "netns", "exec", nat, "nft", "-f", "-"], input=self.nat_rules(state))
            run(["ip", "-n", nat, "addr", "del", f"{old}/32", "dev", "pub"])
            # peers on the segment drop their ARP entry for the old address at once
            run(["ip", "-n", nat, "neigh", "flush", "dev", "pub"], check=False)
            self.save(state)
            self.write_inventory(state)
            log(f"{host_name} (behind the NAT, {host['address']}) remapped: public address {old} -> {new}")
            return host

    @staticmethod
    def taken_addresses(state: dict) -> set:
        """Addresses in use on the lab's segment: hosts', public ones, the gateway and the NAT router's."""
        return ({h["address"] for h in state["hosts"].values()} | {h["public_address"] for h in state["hosts"].values()
                if h.get("public_address")} | {state["gateway"], state.get("nat_router_address")})

    def next_public_address(self, state: dict, current: str) -> str:
        """The next free public address after current, from .NAT_PUBLIC_OFFSET+1 to .254, wrapping."""
        subnet = ipaddress.ip_network(state["subnet"])
        pool = [str(subnet.network_address + offset) for offset in range(NAT_PUBLIC_OFFSET + 1, subnet.num_addresses - 1)]
        taken = self.taken_addresses(state)
        start = pool.index(current) if current in pool else -1
        for candidate in pool[start + 1:] + pool[:start + 1]:
            if candidate not in taken:
                return candidate
        raise LabError(f"lab {self.name}: no free public address left in {subnet}")

    def check_public_address(self, state: dict, host_name: str, address: str) -> None:
        subnet = ipaddress.ip_network(state["subnet"])
        try:
            ok = ipaddress.ip_address(address) in subnet and address not in (str(subnet.network_address), str(subnet.broadcast_address))
        except ValueError:
            ok = False
        if not ok:
            raise LabError(f"--public-address {address}: an address of the lab's segment {subnet}")
        if address in self.taken_addresses(state) - {state["hosts"][host_name]["public_address"]}:
            raise LabError(f"--public-address {address}: taken in lab {self.name}")

    def _create_switch(self, state: dict) -> None:
        ns = state["switch_netns"]
        run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        # The switch never routes: a packet to an address outside the lab dies here.
        run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0"])
        segments = self.segments_of(state)
        for segment in segments:
            run(["ip", "-n", ns, "link", "add", segment["bridge"], "type", "bridge"])
            run(["ip", "-n", ns, "link", "set", segment["bridge"], "up"])
        if not state.get("router_netns"):
            # one routed segment: the switch holds the hosts' gateway address(es) itself
            for address, prefixlen in self.gateways_of(segments[0]):
                run(["ip", "-n", ns, "addr", "add", f"{address}/{prefixlen}", "dev", segments[0]["bridge"], "nodad"])
            return
        # Several segments: a router namespace with one leg per segment really routes between
        # them (forwarding on); it has no default route, so nothing leaves the lab.
        router = state["router_netns"]
        run(["ip", "netns", "add", router])
        run(["ip", "-n", router, "link", "set", "lo", "up"])
        run(["ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
             "net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.default.accept_ra=0"])
        for number, segment in enumerate(self.routed_segments(state)):
            leg = f"rt{number}"
            run(["ip", "-n", ns, "link", "add", leg, "type", "veth", "peer", "name", f"seg{number}", "netns", router])
            run(["ip", "-n", ns, "link", "set", leg, "master", segment["bridge"], "up"])
            for address, prefixlen in self.gateways_of(segment):
                run(["ip", "-n", router, "addr", "add", f"{address}/{prefixlen}", "dev", f"seg{number}", "nodad"])
            run(["ip", "-n", router, "link", "set", f"seg{number}", "up"])

    @staticmethod
    def gateways_of(segment: dict) -> list:
        """[(gateway address, prefix length)] of a segment: its first family's, and IPv6 beside IPv4."""
        found = [(segment["gateway"], ipaddress.ip_network(segment["subnet"]).prefixlen)]
        if segment.get("gateway6"):
            found.append((segment["gateway6"], ipaddress.ip_network(segment["subnet6"]).prefixlen))
        return found

    @staticmethod
    def addresses_of(host: dict) -> list:
        """[(address, prefix length)] of a host's eth0: its first family's, and IPv6 beside IPv4."""
        return [(host["address"], host["prefixlen"])] + ([(host["address6"], host["prefixlen6"])] if host.get("address6") else [])

    def _create_host_network(self, state: dict, host: dict) -> None:
        ns, sw = host["netns"], state["switch_netns"]
        segment = self.segments_of(state)[host.get("segment", 0)]
        run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        # Both veth ends are created inside the switch namespace, then one moves to the host:
        # nothing ever appears in the root namespace.
        run(["ip", "-n", sw, "link", "add", host["switch_port"], "type", "veth",
             "peer", "name", "eth0", "address", host["mac"], "netns", ns])
        run(["ip", "-n", sw, "link", "set", host["switch_port"], "master", segment["bridge"], "up"])
        # static addresses only: no router advertisement or autoconfiguration ever adds one
        run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=0", "net.ipv6.conf.eth0.autoconf=0",
             "net.ipv6.conf.default.accept_ra=0", "net.ipv6.conf.default.autoconf=0"])
        for address, prefixlen in self.addresses_of(host):
            run(["ip", "-n", ns, "addr", "add", f"{address}/{prefixlen}", "dev", "eth0", "nodad"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        for gateway, _prefixlen in self.gateways_of(segment):
            run(["ip", "-n", ns, "route", "add", "default", "via", gateway, "dev", "eth0"])

    def _prepare_disk(self, host: dict) -> None:
        disk = Path(host["disk"])
        if (disk / "etc/hostname").exists():
            return  # a disk keeps what the host wrote: this is a reboot
        (disk / "etc").mkdir(parents=True, exist_ok=True)
        (disk / "etc/hostname").write_text(host["name"] + "\n")
        (disk / "etc/machine-id").write_text(host["machine_id"] + "\n")
        (disk / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {host['name']}\n::1 localhost ip6-localhost ip6-loopback\n")

    def _boot(self, state: dict, host: dict) -> None:
        argv = [
            "systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit",
            f"--directory={state['image']}", f"--overlay={state['image']}:{host['disk']}:/",
            f"--machine={host['machine']}", f"--hostname={host['name']}", f"--uuid={host['machine_id']}",
            f"--network-namespace-path=/run/netns/{host['netns']}",
            # A real host's root may configure its network: nspawn grants CAP_NET_ADMIN only
            # to namespaces it creates itself.
            "--capability=CAP_NET_ADMIN",
            "--bind=/dev/net/tun", "--console=read-only", "--resolv-conf=off", "--timezone=off",
        ]
        runtimes = state.get("variant") == "runtimes"
        if runtimes:
            argv += RUNTIMES_NSPAWN_ARGS
        Path(host["log"]).parent.mkdir(parents=True, exist_ok=True)
        # The host's network namespace is its own, so its /proc/sys/net must be writable, as on
        # a real host (nspawn mounts it read-only when it did not create the namespace itself).
        env = dict(os.environ, SYSTEMD_NSPAWN_API_VFS_WRITABLE="network", **(RUNTIMES_NSPAWN_ENV if runtimes else {}))
        pid = spawn_detached(argv, Path(host["log"]), host_cgroups(host["machine"]), env)
        host["nspawn_pid"], host["nspawn_start"] = pid, process_start_time(pid)

    def leader_pid(self, host: dict) -> int | None:
        """PID of the host's own systemd (its PID 1), the child of the nspawn process."""
        if not is_same_process(host.get("nspawn_pid"), host.get("nspawn_start")):
            return None
        for child in children_of(host["nspawn_pid"]):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # the child exited meanwhile
                if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                    return child
        return None

    def host_running(self, host: dict) -> bool:
        return self.leader_pid(host) is not None

    def _wait_booted(self, state: dict, hosts) -> None:
        def wait(host):
            deadline = time.monotonic() + BOOT_TIMEOUT
            while time.monotonic() < deadline:
                leader = self.leader_pid(host)
                if leader is None and not is_same_process(host["nspawn_pid"], host["nspawn_start"]):
                    raise LabError(f"{host['name']}: systemd-nspawn exited; see {host['log']}")
                if leader:
                    proc = run(["nsenter", "-t", str(leader), "-a", "systemctl", "is-system-running", "--wait"],
                               check=False, env=HOST_ENV, timeout=max(1, deadline - time.monotonic()))
                    status = proc.stdout.strip()
                    if status in ("running", "degraded"):
                        return status
                time.sleep(0.2)
            raise LabError(f"{host['name']} did not finish booting in {BOOT_TIMEOUT} s; see {host['log']}")

        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            for host, status in zip(hosts, pool.map(wait, hosts)):
                if status != "running":
                    failed = self.exec(host["name"], ["systemctl", "--failed", "--no-legend"], state=state).stdout
                    raise LabError(f"{host['name']} booted {status}: failed units:\n{failed}")

    def write_inventory(self, state: dict) -> None:
        """inventory.yml reaches hosts by entering their namespaces (as root); inventory-ssh.yml
        over SSH as user ops with sudo, from a controller in the switch's namespace (`controller`)."""
        hosts = list(state["hosts"].values())
        groups = ["    # overlay.mesh's playbooks work on group overlay by default.", "    overlay:", "      children:", "        lab:"]
        if len(self.segments_of(state)) > 1:
            for number in range(len(self.segments_of(state))):
                members = [host["name"] for host in hosts if host.get("segment", 0) == number]
                groups += [f"    segment{number}:", "      hosts:"] + [f"        {name}:" for name in members]
        if state.get("nat_netns"):
            groups += ["    behind_nat:", "      hosts:"] + [f"        {h['name']}:" for h in hosts if h.get("public_address")]

        def inventory(path, how, connection, per_host=lambda host: []):
            lines = [f"# Inventory of lab {self.name}, written by tests/lab/overlay_lab.py. {how}", "all:", "  vars:"]
            lines += [f"    {line}" for line in connection]
            lines += ["    ansible_python_interpreter: /usr/bin/python3", f"    overlay_lab_name: {self.name}",
                      f"    overlay_lab_underlay_subnet: {state['subnet']}",
                      f"    overlay_lab_underlay: {state.get('underlay', 'ipv4')}", "  children:", "    lab:", "      hosts:"]
            for host in hosts:
                lines += [f"        {host['name']}:"] + [f"          {line}" for line in per_host(host)]
                lines += [f"          overlay_lab_underlay_address: {host['address']}",
                          f"          overlay_lab_segment: {host.get('segment', 0)}"]
                if host.get("address6"):
                    lines.append(f"          overlay_lab_underlay_address6: {host['address6']}")
                if host.get("public_address"):
                    lines.append(f"          overlay_lab_public_address: {host['public_address']}")
            tmp = path.with_suffix(".tmp")
            tmp.write_text("\n".join(lines + groups) + "\n")
            tmp.replace(path)

        inventory(self.inventory_path, "Hosts are reached by\n# entering their namespaces (connection plugin "
                  "tests/lab/connection_plugins/lab_nsenter.py).", ["ansible_connection: lab_nsenter"])
        if not all(host.get("ssh_host_key") for host in hosts):
            return

        def reach(host):  # from the switch's namespace, a host behind the NAT is reached at its public address
            return host.get("public_address") or host["address"]

        # known_hosts by address, rewritten when a host moves: host keys are checked, as they should be
        self.known_hosts_path.write_text("".join(f"{reach(host)} {host['ssh_host_key']}\n" for host in hosts))
        inventory(self.ssh_inventory_path, "Hosts are reached over\n# SSH as a sudo user, from the switch's namespace:"
                  f" overlay_lab.py controller --name {self.name} -- ansible-playbook -i {self.ssh_inventory_path} ...",
                  ["ansible_connection: ssh", f"ansible_user: {SSH_USER}", f"ansible_become_password: {SSH_PASSWORD}",
                   f"ansible_ssh_private_key_file: {self.ssh_key_path}",
                   f"ansible_ssh_common_args: -o UserKnownHostsFile={self.known_hosts_path} -o StrictHostKeyChecking=yes"],
                  lambda host: [f"ansible_host: {reach(host)}"])

    def _prepare_ssh_key(self) -> None:
        """The lab's own key pair, for user ops on every host."""
        self.ssh_key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.ssh_key_path.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"overlay-lab-{self.name}", "-f", self.ssh_key_path])

    def _prepare_ssh(self, state: dict, host: dict) -> None:
        """Authorize the lab's key for ops on a booted host and note the host's own key."""
        key = self.ssh_key_path.with_suffix(".pub").read_text()
        home = f"/home/{SSH_USER}/.ssh"
        self.exec(host["name"], ["sh", "-c", f"install -d -m 700 -o {SSH_USER} -g {SSH_USER} {home} && "
                                 f"install -m 600 -o {SSH_USER} -g {SSH_USER} /dev/stdin {home}/authorized_keys"],
                  state=state, check=True, input=key)
        public = self.exec(host["name"], ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"], state=state, check=True).stdout.split()
        host["ssh_host_key"] = " ".join(public[:2])

    # -- inside a host --
    def exec(self, host_name: str, argv: list[str], state: dict | None = None, check=False, **kwargs):
        state = state or self.load()
        if not state or host_name not in state["hosts"]:
            raise LabError(f"lab {self.name} has no host {host_name}")
        leader = self.leader_pid(state["hosts"][host_name])
        if leader is None:
            raise LabError(f"{host_name} of lab {self.name} is not running")
        return run(["nsenter", "-t", str(leader), "-a", *argv], check=check, env=HOST_ENV, **kwargs)

    # -- reboot / down --
    def _stop(self, host: dict) -> None:
        pid, start = host.get("nspawn_pid"), host.get("nspawn_start")
        if is_same_process(pid, start):
            os.kill(pid, signal.SIGTERM)  # nspawn asks the host's systemd to shut down cleanly
            deadline = time.monotonic() + STOP_TIMEOUT
            while is_same_process(pid, start) and time.monotonic() < deadline:
                time.sleep(0.05)
            if is_same_process(pid, start):
                os.kill(pid, signal.SIGKILL)
        for cgroup in host_cgroups(host["machine"]):
            remove_cgroup(cgroup)

    def _delete_netns(self, ns: str) -> None:
        if Path("/run/netns", ns).exists():
            run(["ip", "netns", "delete", ns])

    def reboot(self, host_name: str, log=print) -> None:
        with self.locked():
            state = self.load()
            if not state or host_name not in state["hosts"]:
                raise LabError(f"lab {self.name} has no host {host_name}")
            host = state["hosts"][host_name]
            started = time.monotonic()
            self._ensure_inotify(state, f"lab {self.name} reboots {host_name}", log)
            self._stop(host)
            host["nspawn_pid"] = host["nspawn_start"] = None
            self.save(state)
            # A reboot loses every link, address, route, neighbour and nftables table: drop the
            # namespace and make a fresh one with the same underlay MAC and address.
            self._delete_netns(host["netns"])
            run(["ip", "-n", state["switch_netns"], "link", "delete", host["switch_port"]], check=False)
            self._create_host_network(state, host)
            self._prepare_disk(host)
            self._boot(state, host)
            self.save(state)
            self._wait_booted(state, [host])
            log(f"{host_name} rebooted in {time.monotonic() - started:.1f} s")

    def move(self, host_name: str, segment: int, log=print) -> dict:
        """Move a running host to another segment, live, as a migration or a new DHCP lease would:
        its switch port joins the other segment's bridge, its address and default route change."""
        with self.locked():
            state = self.load()
            if not state or host_name not in state["hosts"]:
                raise LabError(f"lab {self.name} has no host {host_name}")
            segments = self.routed_segments(state)
            if not 0 <= segment < len(segments):
                raise LabError(f"--segment {segment}: lab {self.name} has segments 0 to {len(segments) - 1}"
                               + (" (and the NAT's private one, which no host moves to or from)" if state.get("nat_netns") else ""))
            host = state["hosts"][host_name]
            if host.get("public_address"):
                raise LabError(f"{host_name} of lab {self.name} is behind the NAT: `remap` gives it another public address")
            old = f"{host['address']}/{host['prefixlen']}"
            target = segments[segment]
            index = int(host_name[len("node"):])
            # the addresses the host would have been given on that segment
            moved = self.plan_host(index, [ipaddress.ip_network(target["subnet"])],
                                   [ipaddress.ip_network(target["subnet6"])] if target.get("subnet6") else None)
            run(["ip", "-n", state["switch_netns"], "link", "set", host["switch_port"], "master", target["bridge"]])
            for address, prefixlen in self.addresses_of(host):
                self.exec(host_name, ["ip", "addr", "del", f"{address}/{prefixlen}", "dev", "eth0"], state=state, check=True)
            for address, prefixlen in self.addresses_of(moved):
                self.exec(host_name, ["ip", "addr", "add", f"{address}/{prefixlen}", "dev", "eth0", "nodad"], state=state, check=True)
            for gateway, _prefixlen in self.gateways_of(target):
                self.exec(host_name, ["ip", "route", "replace", "default", "via", gateway, "dev", "eth0"], state=state, check=True)
            for key in ("address", "prefixlen", "address6", "prefixlen6"):
                if key in moved:
                    host[key] = moved[key]
            host["segment"] = segment
            address, subnet = host["address"], ipaddress.ip_network(target["subnet"])
            self.save(state)
            self.write_inventory(state)
            log(f"{host_name} moved to segment {segment}: {old} -> {address}/{subnet.prefixlen}")
            return host

    def down(self, log=print) -> None:
        with self.locked():
            state = self.load()
            if state is None:
                if self.dir.exists():
                    shutil.rmtree(self.dir)
                log(f"lab {self.name} is not up")
                return
            hosts = list(state["hosts"].values())
            with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(self._stop, hosts))
            for host in hosts:
                self._delete_netns(host["netns"])
            for router in ("router_netns", "nat_netns"):
                if state.get(router):
                    self._delete_netns(state[router])
            self._delete_netns(state["switch_netns"])
            shutil.rmtree(self.dir)
            log(f"lab {self.name} removed")
        with contextlib.suppress(FileNotFoundError):
            (LAB_ROOT / f".{self.name}.lock").unlink()


def list_labs() -> list[str]:
    if not LAB_ROOT.is_dir():
        return []
    return sorted(p.parent.name for p in LAB_ROOT.glob("*/state.json"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("up", "down", "reboot", "move", "remap", "shell", "exec", "status", "inventory", "controller"):
        p = sub.add_parser(command)
        p.add_argument("--name", default=os.environ.get("LAB", "lab"), help="lab name (default: $LAB or 'lab')")
        if command == "up":
            p.add_argument("--hosts", type=int, default=3)
            p.add_argument("--segments", type=int, default=1,
                           help="underlay L2 segments joined by a router (default 1: one switch, no router)")
            p.add_argument("--underlay", choices=UNDERLAYS, default="ipv4",
                           help="the underlay's address families (ipv6: IPv6 only, from 2001:db8::/32; dual: both)")
            p.add_argument("--image", choices=sorted(VARIANTS), default="base",
                           help="runtimes: hosts with docker.io, podman and busybox-static that run real containers")
            p.add_argument("--nat-hosts", type=int, default=0,
                           help="put the last N hosts on a private segment behind a 1:1 NAT router, each with a public address")
        if command in ("reboot", "move", "remap", "shell", "exec"):
            p.add_argument("host")
        if command == "move":
            p.add_argument("--segment", type=int, required=True, help="the segment to move the host to (0-based)")
        if command == "remap":
            p.add_argument("--public-address", help="the host's new public address (default: the next free one)")
        if command in ("exec", "controller"):
            p.add_argument("argv", nargs=argparse.REMAINDER)
    sub.add_parser("list")
    sub.add_parser("image", help="build the image now (normally built by the first `up`)").add_argument(
        "--variant", choices=sorted(VARIANTS), default="base")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            print("\n".join(list_labs()))
            return 0
        if args.command == "image":
            print(ensure_image(variant=args.variant))
            return 0
        lab = Lab(args.name)
        if args.command == "up":
            lab.up(args.hosts, segments=args.segments, variant=args.image, underlay=args.underlay, nat_hosts=args.nat_hosts)
            print(f"inventory: {lab.inventory_path}")
            print(f"enter a host: {sys.argv[0]} shell --name {lab.name} node1")
        elif args.command == "down":
            lab.down()
        elif args.command == "reboot":
            lab.reboot(args.host)
        elif args.command == "move":
            lab.move(args.host, args.segment)
        elif args.command == "remap":
            lab.remap(args.host, args.public_address)
        elif args.command == "inventory":
            print(lab.inventory_path)
        elif args.command == "status":
            state = lab.load()
            if not state:
                print(f"lab {lab.name} is not up")
                return 1
            for host in state["hosts"].values():
                leader = lab.leader_pid(host)
                print(f"{host['name']:10} {host['address']:16} {host.get('address6') or ''} segment {host.get('segment', 0)}  {host['mac']}  "
                      f"{'public ' + host['public_address'] + '  ' if host.get('public_address') else ''}"
                      f"{'running, pid ' + str(leader) if leader else 'stopped'}")
        elif args.command == "shell":
            state = lab.load()
            leader = lab.leader_pid(state["hosts"][args.host]) if state and args.host in state["hosts"] else None
            if not leader:
                raise LabError(f"{args.host} of lab {lab.name} is not running")
            os.execvpe("nsenter", ["nsenter", "-t", str(leader), "-a", "/bin/bash", "-l"], HOST_ENV)
        elif args.command == "controller":
            # A controller that reaches the lab's hosts over the underlay (SSH to inventory-ssh.yml)
            # and nothing else: the command runs in the switch's network namespace.
            state = lab.load()
            if not state:
                raise LabError(f"lab {lab.name} is not up")
            argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            os.execvp("ip", ["ip", "netns", "exec", state["switch_netns"], *(argv or ["true"])])
        elif args.command == "exec":
            proc = lab.exec(args.host, args.argv or ["true"])
            sys.stdout.write(proc.stdout)
            sys.stderr.write(proc.stderr)
            return proc.returncode
    except LabError as err:
        print(f"overlay_lab: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
