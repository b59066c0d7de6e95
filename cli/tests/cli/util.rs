//! Helpers: a device (home dir) that runs the real binary, and tree comparison.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_cobox");

/// One device: a COBOX_HOME of its own.
pub(crate) struct Device {
    pub(crate) home: tempfile::TempDir,
}

impl Device {
    pub(crate) fn new() -> Self {
        Self { home: tempfile::tempdir().expect("temp home") }
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.env("COBOX_HOME", self.home.path()).args(args);
        c
    }

    /// Run and return the output, whatever the exit code.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run cobox")
    }

    /// Run, require success, return stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cobox {args:?} failed: {}\nstdout: {}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Run with --json, require success, parse stdout.
    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let s = self.ok(&a);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("cobox {args:?} printed invalid JSON ({e}): {s}"))
    }

    /// Run, require failure, return stderr.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "cobox {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }

    /// The packs of the spaces this device seeds.
    pub(crate) fn seed_packs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for s in fs::read_dir(self.home.path().join("seeds")).expect("seeds").flatten() {
            for p in fs::read_dir(s.path().join("packs")).expect("packs").flatten() {
                if p.path().extension().is_some_and(|x| x == "pack") {
                    out.push(p.path());
                }
            }
        }
        out.sort();
        out
    }

    /// Flip one bit in the middle of this device's biggest pack.
    pub(crate) fn flip_a_byte(&self) {
        let packs = self.pack_files();
        let biggest = packs.iter().max_by_key(|p| fs::metadata(p).expect("pack").len()).expect("a pack");
        let mut bytes = fs::read(biggest).expect("read pack");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        fs::write(biggest, bytes).expect("write pack");
    }

    pub(crate) fn pack_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for space in fs::read_dir(self.home.path().join("spaces")).expect("spaces dir").flatten() {
            if let Ok(rd) = fs::read_dir(space.path().join("packs")) {
                out.extend(rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "pack")));
            }
        }
        out.sort();
        out
    }
}

/// What a tree holds: path → (kind, content hash or link target, exec bit, mtime secs for files).
#[derive(Debug, PartialEq, Eq, Clone)]
pub(crate) enum Node {
    File { hash: String, exec: bool, mtime: i64 },
    Dir,
    Link(String),
}

/// Two trees are the same; on a difference, the failure names only the paths that differ
/// (a whole snapshot of a hundred files hides the one that matters).
#[track_caller]
pub(crate) fn assert_same_tree(got: &Path, want: &Path, what: &str) {
    let (g, w) = (snapshot(got), snapshot(want));
    let differ: Vec<String> = g
        .keys()
        .chain(w.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| g.get(*k) != w.get(*k))
        .map(|k| format!("{k}: got {:?}, want {:?}", g.get(k), w.get(k)))
        .collect();
    assert!(differ.is_empty(), "{what}: {} paths differ:\n{}", differ.len(), differ.join("\n"));
}

pub(crate) fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    for e in walkdir(root) {
        let rel = e.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
        let m = fs::symlink_metadata(&e).expect("metadata");
        let node = if m.file_type().is_symlink() {
            Node::Link(fs::read_link(&e).expect("link").to_string_lossy().into_owned())
        } else if m.is_dir() {
            Node::Dir
        } else {
            let bytes = fs::read(&e).expect("read file");
            Node::File {
                hash: blake3::hash(&bytes).to_hex().to_string(),
                exec: m.permissions().mode() & 0o111 != 0,
                mtime: m.mtime(),
            }
        };
        out.insert(rel, node);
    }
    out
}

fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            let ft = e.file_type().expect("file type");
            out.push(p.clone());
            if ft.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// Deterministic pseudo-random bytes (BLAKE3 XOF), fast enough for 100 MiB.
pub(crate) fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; n];
    blake3::Hasher::new_keyed(&[seed as u8; 32]).update(&seed.to_le_bytes()).finalize_xof().fill(&mut out);
    out
}

pub(crate) fn write(path: &Path, bytes: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("mkdir");
    }
    fs::write(path, bytes).expect("write");
}

/// Create a space over `folder` on `dev`, returning its id.
/// A file's text, or a panic naming it.
pub(crate) fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Let mtimes move past the scan cache's racy window.
pub(crate) fn pause() {
    std::thread::sleep(std::time::Duration::from_millis(150));
}

pub(crate) fn create_space(dev: &Device, name: &str, folder: &Path) -> String {
    let v = dev.json(&["space", "create", name, "--path", folder.to_str().expect("utf-8 path")]);
    v["id"].as_str().expect("id").to_owned()
}

/// A running `cobox up` on loopback with relays off; stopped with SIGTERM on drop.
pub(crate) struct Daemon {
    child: std::process::Child,
    pub(crate) addr: String,
    /// `IP:PORT` of the HTTP API, when started with `--http`.
    pub(crate) http: Option<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Daemon {
    pub(crate) fn start(dev: &Device) -> Self {
        Self::start_with(dev, &[])
    }

    /// Start with extra `cobox up` arguments (`--interval` defaults to an hour).
    pub(crate) fn start_with(dev: &Device, extra: &[&str]) -> Self {
        use std::io::BufRead;
        let mut args = vec!["up", "--bind", "127.0.0.1:0"];
        if !extra.contains(&"--relay") {
            args.push("--no-relay");
        }
        if !extra.contains(&"--interval") {
            args.extend(["--interval", "3600"]);
        }
        args.extend(extra);
        let mut child = dev
            .cmd(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start cobox up");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let http = extra.contains(&"--http").then(|| {
            let mut l = String::new();
            out.read_line(&mut l).expect("read the http line");
            l.trim().strip_prefix("http http://").unwrap_or_else(|| panic!("unexpected http line {l:?}")).to_owned()
        });
        let mut err = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            s
        });
        Self { child, addr, http, stderr }
    }

    /// Stop with SIGTERM, wait, and return what the daemon logged.
    pub(crate) fn stop(mut self) -> String {
        self.terminate();
        let h = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
        h.join().unwrap_or_default()
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The local addresses of the daemon's UDP sockets (from /proc).
    pub(crate) fn udp_sockets(&self) -> Vec<std::net::SocketAddr> {
        let pid = self.child.id();
        let mut inodes = std::collections::HashSet::new();
        for fd in fs::read_dir(format!("/proc/{pid}/fd")).expect("fds").flatten() {
            if let Some(i) = fs::read_link(fd.path())
                .ok()
                .and_then(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse::<u64>().ok())
            {
                inodes.insert(i);
            }
        }
        let mut out = Vec::new();
        for table in ["udp", "udp6"] {
            let text = fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
            for line in text.lines().skip(1) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                let (Some(local), Some(inode)) = (cols.get(1), cols.get(9).and_then(|i| i.parse::<u64>().ok())) else {
                    continue;
                };
                if !inodes.contains(&inode) {
                    continue;
                }
                let (ip, port) = local.split_once(':').expect("addr:port");
                let port = u16::from_str_radix(port, 16).expect("port");
                let ip: std::net::IpAddr = if ip.len() == 8 {
                    std::net::Ipv4Addr::from(u32::from_str_radix(ip, 16).expect("ip").swap_bytes()).into()
                } else {
                    let mut b = [0u8; 16];
                    for (i, w) in b.chunks_mut(4).enumerate() {
                        let v = u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).expect("ip6").swap_bytes();
                        w.copy_from_slice(&v.to_be_bytes());
                    }
                    std::net::Ipv6Addr::from(b).into()
                };
                out.push(std::net::SocketAddr::new(ip, port));
            }
        }
        out
    }

    /// kill -9; whether the daemon was still running then.
    pub(crate) fn kill9(mut self) -> bool {
        let alive = matches!(self.child.try_wait(), Ok(None));
        let _ = self.child.kill();
        let _ = self.child.wait();
        alive
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// Sync `dev`'s space with a running daemon until both hold the same state.
pub(crate) fn sync_with(dev: &Device, space: &str, d: &Daemon) -> serde_json::Value {
    dev.json(&["sync", space, "--peer", &d.addr, "--no-relay"])
}

/// One HTTP/1.1 request to the daemon's API; returns (status, body).
pub(crate) fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the HTTP API");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read response");
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status code");
    let (head, rest) = resp.split_once("\r\n\r\n").expect("header end");
    // Small JSON bodies may come chunked: keep the lines that are not chunk sizes.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        rest.split("\r\n").skip(1).step_by(2).collect::<Vec<_>>().join("")
    } else {
        rest.to_owned()
    };
    (status, body)
}

/// Mounts a small tmpfs (needs root: its tests are `#[ignore]`d, and CI runs them as root);
/// unmounts on drop.
pub(crate) struct SmallDisk(pub(crate) tempfile::TempDir);

impl SmallDisk {
    pub(crate) fn new(size: &str) -> Self {
        let d = tempfile::tempdir().expect("a temp dir");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(d.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mounting a {size} tmpfs failed: this test needs root (cargo test -- --ignored, as root)");
        Self(d)
    }
}

impl SmallDisk {
    /// Give it a new size (freeing space, as a person would by deleting elsewhere).
    pub(crate) fn resize(&self, size: &str) {
        self.remount(&format!("size={size}"));
    }

    /// Remount with `options` (`ro`, `rw`, `size=…`).
    pub(crate) fn remount(&self, options: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.0.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remounting the tmpfs {options}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0.path()).status();
    }
}

/// The first file under `dir` whose bytes contain `needle`.
pub(crate) fn find_bytes(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("a readable directory").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
                return Some(p);
            }
        }
    }
    None
}
