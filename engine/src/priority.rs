//! Background work at low priority: a daemon's scans and hashing yield the CPU (nice 10) and
//! the disk (the idle I/O class) to whatever the person at the machine is doing. And a daemon's
//! small footprint: freed blobs go back to the system.

/// Lower the calling thread's CPU and I/O priority for good (an unprivileged thread cannot
/// raise it again, so only threads made for background work call this). Linux sets both per
/// thread; elsewhere it does nothing.
pub fn lower_this_thread() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        rustix::process::setpriority_process(Some(tid), BACKGROUND_NICE)?;
        ioprio_idle(tid.as_raw_nonzero().get())?;
    }
    Ok(())
}

/// The nice value of background threads: below interactive work, above `nice 19` batch jobs.
pub const BACKGROUND_NICE: i32 = 10;

/// `ioprio_set(IOPRIO_WHO_PROCESS, tid, IOPRIO_CLASS_IDLE)`: neither libc nor rustix wraps it.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn ioprio_idle(tid: i32) -> std::io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    const IOPRIO_CLASS_SHIFT: u32 = 13;
    // SAFETY: ioprio_set takes three integers and touches no memory of ours; the kernel
    // checks them and answers with an error code.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            tid as libc::c_long,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        )
    };
    if r == -1 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// The I/O class of thread `tid` (for tests): `ioprio_get` shifted down.
#[cfg(all(test, target_os = "linux"))]
#[allow(unsafe_code)]
fn ioprio_class(tid: i32) -> i64 {
    // SAFETY: as above; ioprio_get reads nothing of ours.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_get, 1 as libc::c_long, tid as libc::c_long) };
    r >> 13
}

/// Allocations of this size and up are mapped on their own and unmapped when freed.
pub const MMAP_THRESHOLD: i32 = 1 << 20;

/// Make freed blob buffers go back to the system at once. glibc raises its mmap threshold as
/// large blocks are freed (up to 32 MiB), so chunks then come from per-thread arenas that keep
/// what they held: a seeder taking four owners' folders at once peaked at 275 MiB resident,
/// and at 215 MiB with a fixed 1 MiB threshold (docs/benchmarks.md). Call it before threads
/// start. Other C libraries do nothing here.
pub fn small_footprint() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt takes two integers and changes only the allocator's tuning; called
        // before the runtime starts its threads.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

/// Hand freed heap pages back to the system now: after a large structure (a released
/// manifest) is dropped, glibc keeps its small blocks' pages in the arenas until trimmed.
pub fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes an integer and only returns free pages to the system.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// A pool of threads at background priority for scans: rayon work started inside
/// `install` (the scan's parallel hashing) runs on these threads too.
pub fn background_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("cobox-background-{i}"))
            .start_handler(|_| {
                // A platform that refuses leaves the thread at normal priority: slower to yield,
                // never wrong.
                let _ = lower_this_thread();
            })
            .build()
            .ok()
    })
    .as_ref()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn background_threads_run_at_nice_10_in_the_idle_io_class() {
        let pool = background_pool().expect("a pool");
        let (nice, class) = pool.install(|| {
            let tid = rustix::thread::gettid();
            (rustix::process::getpriority_process(Some(tid)).unwrap(), ioprio_class(tid.as_raw_nonzero().get()))
        });
        assert_eq!((nice, class), (BACKGROUND_NICE, 3));
        // This thread is untouched.
        let me = rustix::thread::gettid();
        assert_eq!(rustix::process::getpriority_process(Some(me)).unwrap(), 0);
    }
}
