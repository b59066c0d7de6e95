#!/usr/bin/env python3
"""Syncthing side by side with `cobox sync`: the same folder, the same loopback, the same run.

usage: scripts/syncthing-bench.py DIR   (needs `syncthing` (Debian's) and a release build of cobox)
       scripts/syncthing-bench.py --wan DIR WORK   Syncthing alone over QUIC through the network namespaces
                                                   and relay that scripts/wan-bench.sh sets up (SYNCTHING=1
                                                   there); prints its time in seconds

Syncthing: two instances with their own homes, each told the other's device id and address, relays,
discovery and NAT off, the folder shared send-receive. Timed from starting the receiver to its
REST API reporting the folder 100% complete with every byte present (scan of the sender included,
as in the issue's figure). CoBox: `cobox sync` from a joined device to a daemon holding the
scanned folder (the sender's scan not included; it is reported separately).
"""
import json, os, re, shutil, socket, subprocess, sys, tempfile, time, urllib.request
import xml.etree.ElementTree as ET

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)

def st_home(root, name):
    home = os.path.join(root, name)
    subprocess.run(["syncthing", "generate", f"--home={home}", "--no-default-folder", "--skip-port-probing"],
                   check=True, capture_output=True)
    dev = subprocess.run(["syncthing", "serve", f"--home={home}", "--device-id"], check=True,
                         capture_output=True, text=True).stdout.strip()
    return home, dev

def configure(home, me, peer, peer_addr, listen, gui_addr, folder, key):
    path = os.path.join(home, "config.xml")
    t = ET.parse(path); c = t.getroot()
    gui = c.find("gui"); gui.find("address").text = gui_addr
    gui.find("apikey").text = key if gui.find("apikey") is not None else None
    if gui.find("apikey") is None:
        ET.SubElement(gui, "apikey").text = key
    o = c.find("options")
    def opt(name, val):
        e = o.find(name)
        if e is None: e = ET.SubElement(o, name)
        e.text = val
    for e in o.findall("listenAddress"): o.remove(e)
    ET.SubElement(o, "listenAddress").text = listen
    for n, v in [("globalAnnounceEnabled", "false"), ("localAnnounceEnabled", "false"), ("relaysEnabled", "false"),
                 ("natEnabled", "false"), ("urAccepted", "-1"), ("crashReportingEnabled", "false"),
                 ("autoUpgradeIntervalH", "0"), ("startBrowser", "false")]:
        opt(n, v)
    d = ET.SubElement(c, "device", id=peer, name="peer", compression="metadata", introducer="false")
    ET.SubElement(d, "address").text = peer_addr
    f = ET.SubElement(c, "folder", id="bench", label="bench", path=folder, type="sendreceive",
                      rescanIntervalS="3600", fsWatcherEnabled="false")
    ET.SubElement(f, "device", id=me); ET.SubElement(f, "device", id=peer)
    t.write(path)

def settle(warm=None):
    """Flush writeback and, as root, drop the caches: on ext4 without a journal the cached inode
    table blocks of files deleted in the last minutes make creating files 10-20x slower, so
    without this a run measures what ran before it. `warm`: read this folder back in (Syncthing's
    scan is timed; it should not pay for the dropped cache)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f: f.write("3\n")
    except OSError:
        pass
    for r, _, fs in (os.walk(warm) if warm else []):
        for n in fs:
            with open(os.path.join(r, n), "rb") as f:
                while f.read(1 << 20): pass

def api(host, key, path):
    req = urllib.request.Request(f"http://{host}{path}", headers={"X-API-Key": key})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())

# Loopback: both instances on TCP in this namespace.
def loopback():
    pa, pb = free_port(), free_port()
    return {"a": {"listen": f"tcp://127.0.0.1:{pa}", "peer": f"tcp://127.0.0.1:{pb}",
                  "gui": f"127.0.0.1:{free_port()}", "netns": []},
            "b": {"listen": f"tcp://127.0.0.1:{pb}", "peer": f"tcp://127.0.0.1:{pa}",
                  "gui": f"127.0.0.1:{free_port()}", "netns": []}}

# wan-bench.sh's layout: the sender in namespace cobox-wa (10.77.1.2), the receiver in cobox-wb
# (10.77.2.2), whose only way to the sender is the udpdelay relay on 10.77.2.1:9002, which that
# script starts towards 10.77.1.2:22001. Syncthing runs QUIC there (TCP cannot cross the relay);
# the sender is not told the receiver's address, so the receiver dials. The GUIs listen on the
# namespaces' addresses, which this (root) namespace reaches.
WAN = {"a": {"listen": "quic://10.77.1.2:22001", "peer": "dynamic", "gui": "10.77.1.2:8384",
             "netns": ["ip", "netns", "exec", "cobox-wa"]},
       "b": {"listen": "quic://10.77.2.2:22002", "peer": "quic://10.77.2.1:9002", "gui": "10.77.2.2:8384",
             "netns": ["ip", "netns", "exec", "cobox-wb"]}}

def syncthing(data, work, net):
    (ha, ida), (hb, idb) = st_home(work, "st-a"), st_home(work, "st-b")
    a, b = net["a"], net["b"]
    dest = os.path.join(work, "st-dest"); os.makedirs(dest)
    configure(ha, ida, idb, a["peer"], a["listen"], a["gui"], data, "benchkeyA")
    configure(hb, idb, ida, b["peer"], b["listen"], b["gui"], dest, "benchkeyB")
    env = dict(os.environ, STNOUPGRADE="1")
    procs = []
    try:
        settle(warm=data)
        t0 = time.monotonic()
        for h, side in ((ha, a), (hb, b)):
            procs.append(subprocess.Popen([*side["netns"], "syncthing", "serve", f"--home={h}", "--no-browser",
                                           "--no-restart"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        total = dir_bytes(data)
        while True:
            time.sleep(0.1)
            try:
                comp = api(b["gui"], "benchkeyB", f"/rest/db/completion?folder=bench&device={idb}")
                st = api(b["gui"], "benchkeyB", "/rest/db/status?folder=bench")
            except Exception:
                continue
            if st.get("globalBytes", 0) >= total and st.get("inSyncBytes", 0) >= total and st.get("state") == "idle":
                took = time.monotonic() - t0
                if dir_bytes(dest) != total:
                    raise SystemExit(f"syncthing reported done but holds {dir_bytes(dest)} of {total} bytes")
                return took, comp
            if time.monotonic() - t0 > 600:
                raise SystemExit("syncthing did not finish in 10 minutes")
    finally:
        for p in procs: p.terminate()
        for p in procs: p.wait()

def cobox(data, work):
    bin_ = os.path.join(os.path.dirname(__file__), "..", "target", "release", "cobox")
    def run(home, *args):
        return subprocess.run([bin_, *args], env=dict(os.environ, COBOX_HOME=home), check=True,
                              capture_output=True, text=True).stdout
    a, b = os.path.join(work, "co-a"), os.path.join(work, "co-b")
    t0 = time.monotonic(); run(a, "space", "create", "bench", "--path", data); run(a, "scan", "bench")
    scan = time.monotonic() - t0
    up = subprocess.Popen([bin_, "up", "--bind", "127.0.0.1:0", "--no-relay", "--interval", "3600"],
                          env=dict(os.environ, COBOX_HOME=a), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        addr = up.stdout.readline().strip().removeprefix("listening ")
        code = run(a, "invite", "bench").strip()
        run(b, "join", code, "--path", os.path.join(work, "co-dest"))
        settle()
        t0 = time.monotonic(); run(b, "sync", "bench", "--peer", addr, "--no-relay")
        return scan, time.monotonic() - t0
    finally:
        up.terminate(); up.wait()

def main():
    if len(sys.argv) not in (2, 4) or (len(sys.argv) == 4) != (sys.argv[1] == "--wan"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "--wan":
        took, _ = syncthing(os.path.abspath(sys.argv[2]), sys.argv[3], WAN)
        print(f"{took:.2f}")
        return
    data = os.path.abspath(sys.argv[1])
    # COBOX_BENCH_WORK: a fresh folder (see the workflow bench on ext4 without a journal).
    base = os.environ.get("COBOX_BENCH_WORK", os.path.dirname(data))
    os.makedirs(base, exist_ok=True)
    work = tempfile.mkdtemp(dir=base)
    try:
        total = dir_bytes(data) / 1048576
        st, _ = syncthing(data, work, loopback())
        scan, co = cobox(data, work)
        print(f"folder {data}: {total:.1f} MiB")
        print(f"syncthing {subprocess.run(['syncthing','--version'],capture_output=True,text=True).stdout.split()[1]}: "
              f"{st:.2f} s ({total*1.048576/st:.1f} MB/s), sender scan included")
        print(f"cobox sync: {co:.2f} s ({total*1.048576/co:.1f} MB/s); cobox scan before it {scan:.2f} s; "
              f"scan + sync {scan+co:.2f} s")
        print(f"  ratio: cobox sync is {st/co:.2f}x faster than syncthing; scan + sync {st/(scan+co):.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)

main()
