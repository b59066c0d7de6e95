//! Paths resolved beneath a folder without following symlinks, for everything that writes into
//! a space's folder or a restore's destination.
//!
//! A manifest is written by other devices, so it may create a link `x` and then name `x/f`.
//! Joining paths (`root.join("x/f")`) would follow that link out of the folder, and checking each
//! ancestor first leaves a race between the check and the use. Here every operation happens
//! relative to a directory descriptor reached from the folder's own descriptor with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so a symlink (or `..`) anywhere on the way
//! fails the call instead of being followed, and what was checked is what is used. Kernels
//! without `openat2` (before 5.6, or a seccomp filter that refuses it) get the same guarantee one
//! component at a time, each opened with `O_NOFOLLOW` relative to the last.

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether `openat2` works here; cleared the first time the kernel refuses it.
static OPENAT2: AtomicBool = AtomicBool::new(true);
/// Whether unnamed files (`O_TMPFILE`) can be made and linked here; cleared the first time a
/// file system refuses one.
static UNNAMED: AtomicBool = AtomicBool::new(true);

/// Whether [`Entry::create_unnamed`] is worth trying: not refused before, and `/proc` mounted
/// (an unnamed file is linked by its `/proc/self/fd` path; without it one could be written but
/// never named).
pub(crate) fn unnamed_files() -> bool {
    static PROC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    UNNAMED.load(Ordering::Relaxed) && *PROC.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// A folder that paths are resolved beneath.
pub(crate) struct Folder {
    fd: OwnedFd,
    /// Tests force the one-component-at-a-time walk.
    walk_only: bool,
}

/// One name in a directory reached beneath a [`Folder`]: what every operation acts on.
#[derive(Clone)]
pub(crate) struct Entry {
    dir: Arc<OwnedFd>,
    name: String,
    /// The path relative to the folder, for messages.
    rel: String,
}

impl Folder {
    /// Open the folder at `root` (which the caller trusts, links and all).
    pub(crate) fn open(root: &Path) -> io::Result<Self> {
        let fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Self { fd, walk_only: false })
    }

    /// `rel` (a validated relative path: no empty, `.` or `..` components) as a name in its
    /// parent directory. With `create`, missing parent directories are made; without, a missing
    /// one is `NotFound`. A symlink or non-directory on the way is an error.
    pub(crate) fn entry(&self, rel: &str, create: bool) -> io::Result<Entry> {
        cobox_core::entry::validate_path(rel).map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let dir = match self.dir(parent) {
            Err(e) if create && e.kind() == io::ErrorKind::NotFound => self.make_dirs(parent)?,
            r => r?,
        };
        Ok(Entry { dir: Arc::new(dir), name: name.to_owned(), rel: rel.to_owned() })
    }

    #[cfg(test)]
    /// What is at `rel`, not following a symlink there (`None`: nothing, or no parent folder).
    pub(crate) fn stat(&self, rel: &str) -> io::Result<Option<fs::Metadata>> {
        match self.entry(rel, false) {
            Ok(e) => e.stat(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Set the mode of the directory at `rel` (`""`: the folder itself).
    pub(crate) fn set_dir_mode(&self, rel: &str, mode: u32) -> io::Result<()> {
        let fd = self.open_beneath(rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        Ok(())
    }

    /// A descriptor for the directory `rel` (`""`: the folder).
    fn dir(&self, rel: &str) -> io::Result<OwnedFd> {
        self.open_beneath(rel, OFlags::PATH | OFlags::DIRECTORY)
    }

    /// Open `rel` beneath the folder, following no symlink on the way or at its end.
    fn open_beneath(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let rel = if rel.is_empty() { "." } else { rel };
        if !self.walk_only && OPENAT2.load(Ordering::Relaxed) {
            let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(&self.fd, rel, flags, Mode::empty(), how) {
                Err(Errno::NOSYS | Errno::PERM) => OPENAT2.store(false, Ordering::Relaxed),
                r => return r.map_err(Into::into),
            }
        }
        let mut parts = rel.split('/').peekable();
        let mut cur =
            rustix::fs::openat(&self.fd, ".", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        while let Some(part) = parts.next() {
            if part == ".." {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "'..' in a path beneath a folder"));
            }
            let last = parts.peek().is_none();
            let f = if last { flags } else { OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC };
            cur = rustix::fs::openat(&cur, part, f, Mode::empty())?;
        }
        Ok(cur)
    }

    /// Make the directories of `rel` that are missing, one at a time, each beneath the last.
    fn make_dirs(&self, rel: &str) -> io::Result<OwnedFd> {
        let mut cur = self.dir("")?;
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            match rustix::fs::mkdirat(&cur, part, Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            cur = rustix::fs::openat(
                &cur,
                part,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
        }
        Ok(cur)
    }
}

impl Entry {
    /// The path relative to the folder.
    pub(crate) fn rel(&self) -> &str {
        &self.rel
    }

    /// Another name in the same directory.
    pub(crate) fn sibling(&self, name: &str) -> Entry {
        let rel = match self.rel.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{name}"),
            None => name.to_owned(),
        };
        Entry { dir: self.dir.clone(), name: name.to_owned(), rel }
    }

    /// What is here, not following a symlink (`None`: nothing).
    pub(crate) fn stat(&self) -> io::Result<Option<fs::Metadata>> {
        match rustix::fs::openat(
            &*self.dir,
            &self.name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => File::from(fd).metadata().map(Some),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The target of the symlink here.
    pub(crate) fn read_link(&self) -> io::Result<String> {
        let t = rustix::fs::readlinkat(&*self.dir, &self.name, Vec::new())?;
        t.into_string().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "link target is not UTF-8"))
    }

    /// Remove the file or symlink here (never what a symlink points to).
    pub(crate) fn remove_file(&self) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&*self.dir, &self.name, AtFlags::empty())?)
    }

    /// Remove the empty directory here.
    pub(crate) fn remove_dir(&self) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&*self.dir, &self.name, AtFlags::REMOVEDIR)?)
    }

    /// Create a directory here with exactly `mode`.
    pub(crate) fn create_dir(&self, mode: u32) -> io::Result<()> {
        // Made private first so it can be opened (as a directory, not through a link) to set
        // the mode: a mode without read permission would otherwise lock us out.
        rustix::fs::mkdirat(&*self.dir, &self.name, Mode::from_raw_mode(0o700))?;
        let fd = rustix::fs::openat(
            &*self.dir,
            &self.name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?)
    }

    /// Create a symlink here pointing to `to`.
    pub(crate) fn symlink(&self, to: &str) -> io::Result<()> {
        Ok(rustix::fs::symlinkat(to, &*self.dir, &self.name)?)
    }

    /// Rename what is here to `to` (replacing a file there).
    pub(crate) fn rename(&self, to: &Entry) -> io::Result<()> {
        Ok(rustix::fs::renameat(&*self.dir, &self.name, &*to.dir, &to.name)?)
    }

    /// Rename, failing with `AlreadyExists` rather than replacing what is at `to`.
    pub(crate) fn rename_noreplace(&self, to: &Entry) -> io::Result<()> {
        let flags = rustix::fs::RenameFlags::NOREPLACE;
        Ok(rustix::fs::renameat_with(&*self.dir, &self.name, &*to.dir, &to.name, flags)?)
    }

    /// Open the file here for reading, never through a symlink (one swapped in since the
    /// folder was walked fails with `ELOOP` instead of being read).
    pub(crate) fn open_read(&self) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(File::from(rustix::fs::openat(&*self.dir, &self.name, flags, Mode::empty())?))
    }

    /// Open (create or truncate) a file here for writing, never through a symlink; `direct`
    /// asks for O_DIRECT.
    pub(crate) fn create_file(&self, direct: bool) -> io::Result<File> {
        let mut flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if direct {
            flags |= OFlags::DIRECT;
        }
        let fd = rustix::fs::openat(&*self.dir, &self.name, flags, Mode::from_raw_mode(0o600))?;
        Ok(File::from(fd))
    }

    /// Open an unnamed file in this entry's directory (`O_TMPFILE`), to be given this name by
    /// [`Entry::link_unnamed`] once written: one directory change per file instead of a temp
    /// name's creation and its rename, and nothing left behind by a crash. A file system
    /// without them answers `Unsupported`, and none is tried again.
    pub(crate) fn create_unnamed(&self, direct: bool) -> io::Result<File> {
        let mut flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
        if direct {
            flags |= OFlags::DIRECT;
        }
        match rustix::fs::openat(&*self.dir, ".", flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => Ok(File::from(fd)),
            // EISDIR: a kernel that does not know O_TMPFILE (it reads O_DIRECTORY).
            Err(Errno::OPNOTSUPP | Errno::ISDIR) => {
                UNNAMED.store(false, Ordering::Relaxed);
                Err(io::ErrorKind::Unsupported.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Give the unnamed file `f` this name, failing with `AlreadyExists` rather than replacing
    /// anything here (a file made meanwhile is someone's, not ours to clobber).
    pub(crate) fn link_unnamed(&self, f: &File) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let path = format!("/proc/self/fd/{}", f.as_raw_fd());
        Ok(rustix::fs::linkat(rustix::fs::CWD, path.as_str(), &*self.dir, &self.name, AtFlags::SYMLINK_FOLLOW)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(root: &Path) -> [Folder; 2] {
        let walk = Folder { walk_only: true, ..Folder::open(root).unwrap() };
        [Folder::open(root).unwrap(), walk]
    }

    /// Every operation refuses a path through a symlink, on both resolvers, and leaves what
    /// the link points to alone.
    #[test]
    fn nothing_goes_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("f"), b"theirs").unwrap();
        fs::create_dir(outside.path().join("empty")).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("x")).unwrap();
        for f in both(d.path()) {
            assert!(f.entry("x/f", false).is_err(), "walk_only {}", f.walk_only);
            assert!(f.entry("x/new/f", true).is_err());
            assert!(f.stat("x/f").is_err());
            assert!(f.set_dir_mode("x", 0o777).is_err());
            assert!(f.set_dir_mode("x/empty", 0o777).is_err());
            // The link itself is an entry like any other.
            let x = f.entry("x", false).unwrap();
            assert!(x.stat().unwrap().unwrap().file_type().is_symlink());
            assert!(x.create_file(false).is_err(), "no write through a final link");
            assert!(x.open_read().is_err(), "no read through a final link");
        }
        assert_eq!(fs::read(outside.path().join("f")).unwrap(), b"theirs");
        assert!(outside.path().join("empty").is_dir());
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 2);
        assert!(Folder::open(d.path()).unwrap().entry("../f", false).is_err());
        assert!(Folder::open(d.path()).unwrap().entry("/etc/passwd", false).is_err());
    }

    #[test]
    fn entries_are_made_read_renamed_and_removed_beneath() {
        let d = tempfile::tempdir().unwrap();
        for (i, f) in both(d.path()).into_iter().enumerate() {
            let base = format!("t{i}");
            let e = f.entry(&format!("{base}/a/b/c.txt"), true).unwrap();
            assert!(d.path().join(&base).join("a/b").is_dir());
            assert!(e.stat().unwrap().is_none());
            std::io::Write::write_all(&mut e.create_file(false).unwrap(), b"hi").unwrap();
            assert_eq!(f.stat(&format!("{base}/a/b/c.txt")).unwrap().unwrap().len(), 2);
            let moved = e.sibling("d.txt");
            assert_eq!(moved.rel(), format!("{base}/a/b/d.txt"));
            e.rename(&moved).unwrap();
            assert_eq!(fs::read(d.path().join(&base).join("a/b/d.txt")).unwrap(), b"hi");
            moved.remove_file().unwrap();
            let link = f.entry(&format!("{base}/l"), false).unwrap();
            link.symlink("a/b").unwrap();
            assert_eq!(link.read_link().unwrap(), "a/b");
            let sub = f.entry(&format!("{base}/m"), false).unwrap();
            sub.create_dir(0o555).unwrap();
            assert_eq!(sub.stat().unwrap().unwrap().permissions().mode() & 0o777, 0o555);
            f.set_dir_mode(&format!("{base}/m"), 0o755).unwrap();
            sub.remove_dir().unwrap();
            assert!(f.stat(&format!("{base}/missing/x")).unwrap().is_none());
        }
    }

    /// An unnamed file shows nowhere until linked, is linked beneath the folder under its
    /// name, and never replaces what is there (a file or a link made meanwhile).
    #[test]
    fn an_unnamed_file_is_named_once_and_never_replaces_anything() {
        let d = tempfile::tempdir().unwrap();
        if !unnamed_files() {
            panic!("this test's file system ({}) should take O_TMPFILE", d.path().display());
        }
        let f = Folder::open(d.path()).unwrap();
        let e = f.entry("sub/new.txt", true).unwrap();
        let mut file = e.create_unnamed(false).unwrap();
        std::io::Write::write_all(&mut file, b"made unnamed").unwrap();
        assert_eq!(fs::read_dir(d.path().join("sub")).unwrap().count(), 0, "nothing shows before the link");
        e.link_unnamed(&file).unwrap();
        assert_eq!(fs::read(d.path().join("sub/new.txt")).unwrap(), b"made unnamed");
        // Written since: a second unnamed file for the same name is refused, the first kept.
        let other = e.create_unnamed(false).unwrap();
        assert_eq!(e.link_unnamed(&other).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(d.path().join("sub/new.txt")).unwrap(), b"made unnamed");
        // A link put where the file would go is not followed or replaced.
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("x"), d.path().join("sub/l")).unwrap();
        let l = f.entry("sub/l", false).unwrap();
        assert_eq!(l.link_unnamed(&other).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert!(!outside.path().join("x").exists());
    }

    use std::os::unix::fs::PermissionsExt;
}
