//! Helpers for the whole-workflow benchmarks: run a command and measure its wall time and peak
//! memory, sizes of directories, generated folders.

#![allow(missing_docs)]

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Wall time and peak resident memory of one child process.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub wall: Duration,
    pub peak_rss_kib: u64,
    /// User plus system CPU time: on this shared 2-core VM steadier than wall time.
    pub cpu: Duration,
    /// The system part of `cpu` (on this VM it swings with the file system's state).
    pub sys: Duration,
}

/// Run `cmd` to completion, returning its stdout and measurements. Fails on a non-zero exit.
pub fn measure(cmd: &mut Command) -> Result<(String, Measured)> {
    let start = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    // Read output on threads so a chatty child cannot block on a full pipe.
    let mut child = child;
    let mut out = child.stdout.take().context("stdout")?;
    let mut err = child.stderr.take().context("stderr")?;
    let to = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let te = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let (status, rusage) = wait4(pid)?;
    let wall = start.elapsed();
    let stdout = to.join().unwrap_or_default();
    let stderr = te.join().unwrap_or_default();
    if status != 0 {
        bail!("{cmd:?} failed (status {status}): {stderr}");
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let sys = tv(rusage.ru_stime);
    Ok((stdout, Measured { wall, peak_rss_kib: rusage.ru_maxrss as u64, cpu: tv(rusage.ru_utime) + sys, sys }))
}

/// Reap one child and get its own resource usage (peak RSS), which std's `Child::wait` hides.
#[allow(unsafe_code)]
fn wait4(pid: libc::pid_t) -> Result<(i32, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; zeroed is a valid value and wait4 fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own un-reaped child; the pointers are valid for the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r < 0 {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    Ok((status, ru))
}

/// Call `f` with each regular file under `dir`.
fn each_file(dir: &Path, mut f: impl FnMut(&std::fs::DirEntry)) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => f(&e),
                _ => {}
            }
        }
    }
}

/// Total bytes of the regular files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    each_file(dir, |e| total += e.metadata().map(|m| m.len()).unwrap_or(0));
    total
}

/// The regular files under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    each_file(dir, |e| out.extend(e.path().strip_prefix(dir).ok().map(Path::to_path_buf)));
    out.sort();
    out
}

/// Check that `copy` holds the same files with the same bytes as `orig` (a benchmark that
/// timed a broken copy measured nothing). Returns the number of files.
pub fn same_files(orig: &Path, copy: &Path) -> Result<usize> {
    let (a, b) = (files_under(orig), files_under(copy));
    if a != b {
        let only = |x: &[PathBuf], y: &[PathBuf]| x.iter().filter(|p| y.binary_search(p).is_err()).count();
        bail!(
            "{} holds {} files, {} holds {}: {} missing from the copy, {} extra",
            orig.display(),
            a.len(),
            copy.display(),
            b.len(),
            only(&a, &b),
            only(&b, &a)
        );
    }
    for rel in &a {
        let hash = |root: &Path| -> Result<blake3::Hash> {
            let mut h = blake3::Hasher::new();
            h.update_reader(std::fs::File::open(root.join(rel))?)?;
            Ok(h.finalize())
        };
        if hash(orig)? != hash(copy)? {
            bail!("{} differs in the copy", rel.display());
        }
    }
    Ok(a.len())
}

/// Drop the page cache (root only). Returns whether it worked.
pub fn drop_caches() -> bool {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// The `cobox` binary next to this one (build it with `cargo build --release -p cobox`), or `$COBOX_BIN`.
pub fn cobox_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("COBOX_BIN") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe()?;
    let p = exe.with_file_name("cobox");
    if !p.exists() {
        bail!("{} not found: run `cargo build --release -p cobox` first or set COBOX_BIN", p.display());
    }
    Ok(p)
}

/// Whether a program is on PATH.
pub fn have(prog: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {prog}")]).output().is_ok_and(|o| o.status.success())
}

/// Write `n` small text files (50-150 bytes) under `dir`, 1,000 per folder.
pub fn small_files(dir: &Path, n: usize) -> Result<()> {
    for i in 0..n {
        let d = dir.join(format!("d{:04}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&d)?;
        }
        std::fs::write(d.join(format!("f{i:07}.txt")), format!("file number {i}\n").repeat(1 + i % 7))?;
    }
    Ok(())
}

pub fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// Resident and peak memory of this process, KiB.
pub fn self_rss_kib() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
