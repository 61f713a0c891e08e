"""Process-tree sampling the benchmark runners share: CPU seconds and peak RSS (VmHWM) of a
server and its descendants from /proc, the CPU other processes use during a run (the machine
is shared), and small helpers."""

import os
import socket
import sys
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# /proc sampling

def read_procs():
    """{pid: (ppid, cpu_ticks, comm)} for every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                s = f.read()
        except OSError:
            continue
        lp, rp = s.find("("), s.rfind(")")
        comm = s[lp + 1:rp]
        f = s[rp + 2:].split()
        try:
            out[int(name)] = (int(f[1]), int(f[11]) + int(f[12]), comm)
        except (IndexError, ValueError):
            continue
    return out


def tree_pids(root, procs=None):
    procs = procs if procs is not None else read_procs()
    tree, i = [root], 0
    while i < len(tree):
        for pid, (ppid, _, _) in procs.items():
            if ppid == tree[i] and pid not in tree:
                tree.append(pid)
        i += 1
    return [p for p in tree if p in procs]


def tree_cpu_s(root):
    procs = read_procs()
    return sum(procs[p][1] for p in tree_pids(root, procs)) / CLK_TCK


def vm_hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


class RssSampler(threading.Thread):
    """Samples VmHWM (the kernel's peak RSS) of the server and its descendants.

    VmHWM is already a high-water mark per process; sampling catches child processes that
    exit before the end. The peak is the sum over the tree of each process's VmHWM."""

    def __init__(self, root, interval=0.25):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.hwm = {}
        self.stop_ev = threading.Event()

    def sample(self):
        for p in tree_pids(self.root):
            self.hwm[p] = max(self.hwm.get(p, 0), vm_hwm_kb(p))

    def run(self):
        while not self.stop_ev.is_set():
            self.sample()
            self.stop_ev.wait(self.interval)

    def stop(self):
        self.sample()
        self.stop_ev.set()
        self.join()
        return sum(self.hwm.values()) / 1024.0


class OtherLoad(threading.Thread):
    """CPU used by processes outside the benchmark during a run (the machine is shared).

    Samples /proc every second so that processes which start and exit during the run (compilers,
    test runs) are counted up to their last sample."""

    def __init__(self, exclude_roots, interval=1.0):
        super().__init__(daemon=True)
        self.exclude_roots, self.interval = exclude_roots, interval
        self.first = {pid: ticks for pid, (_, ticks, _) in read_procs().items()}
        self.last = {}   # pid -> (ticks, comm, cmdline)
        self.excluded = {os.getpid()}
        self.t0 = time.time()
        self.stop_ev = threading.Event()
        self.start()

    def sample(self):
        procs = read_procs()
        for r in self.exclude_roots:
            self.excluded.update(tree_pids(r, procs))
        for pid in procs:
            if procs[pid][0] == os.getpid():   # our direct children: servers and the loadgen
                self.excluded.add(pid)
        for pid, (_, ticks, comm) in procs.items():
            if pid in self.excluded:
                continue
            prev = self.last.get(pid)
            self.last[pid] = (ticks, comm, prev[2] if prev else cmdline(pid)[:120])

    def run(self):
        while not self.stop_ev.wait(self.interval):
            self.sample()

    def finish(self, min_cpu_s=1.0):
        self.sample()
        self.stop_ev.set()
        self.join()
        busy = []
        for pid, (ticks, comm, cmd) in self.last.items():
            if pid in self.excluded:
                continue
            d = (ticks - self.first.get(pid, 0)) / CLK_TCK
            if d >= min_cpu_s:
                busy.append((d, pid, comm, cmd))
        busy.sort(reverse=True)
        return time.time() - self.t0, busy


def short_cmd(comm, cmd):
    """`rustc (regex_syntax)`-style label for a process."""
    parts = cmd.split()
    if comm == "rustc" and "--crate-name" in parts:
        i = parts.index("--crate-name")
        return f"rustc {parts[i + 1] if i + 1 < len(parts) else ''}".strip()
    args = [os.path.basename(a) if "/" in a else a for a in parts[1:4]]
    return " ".join([comm] + args)[:70]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
