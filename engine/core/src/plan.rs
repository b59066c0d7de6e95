//! The materialiser's decisions: for each manifest path, what to do to the folder, from the
//! manifest's entry and what the engine saw at that path just now. The engine observes (one
//! `lstat` per path, a `readlink` for links, the scan cache, the store) and carries the action
//! out; every rule that protects a user's files is here, pure and tested:
//!
//! - an ignored path is never written, replaced or deleted;
//! - only a path whose manifest entry differs from what this device last recorded there is
//!   touched: a local save, delete or rename made since the last scan, where no incoming change
//!   touched the path, is left for the next scan to record (as Syncthing does);
//! - a file edited since the last scan is never overwritten or deleted: a new version moves it
//!   aside under a conflict name first, unless the file already holds that version (a file the
//!   engine itself wrote, or the same edit made on two devices), which is only recorded;
//! - a change of kind applies (file, folder and link become one another): what is in the way is
//!   removed when nothing of it is unsynced (an unedited file, a link, an empty folder), and
//!   moved aside under a conflict name when it holds an edit (an edited file, a folder with
//!   anything left in it once the pass's deletions are done);
//! - a folder is removed only when empty (the engine removes deepest first).

use crate::entry::{Entry, Kind};
use crate::ignores::Ignores;
use crate::settle::conflict_name;

/// What the folder holds at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// Nothing.
    Absent,
    /// A regular file; `edited` when it differs from what the last scan recorded (or was never
    /// recorded), `mtime_ns` its modification time now.
    File {
        /// Changed since the scan recorded it, or never recorded.
        edited: bool,
        /// Its modification time now.
        mtime_ns: i64,
    },
    /// A folder.
    Dir,
    /// A symbolic link (its target text, when read) or another special file.
    Other {
        /// The link's target, when it is a link that could be read.
        link_target: Option<String>,
    },
}

impl Local {
    fn is_dir(&self) -> bool {
        matches!(self, Local::Dir)
    }

    fn edited(&self) -> bool {
        matches!(self, Local::File { edited: true, .. })
    }
}

/// What the engine saw at a path, beside the manifest's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The folder at the path.
    pub local: Local,
    /// The scan cache recorded the manifest's state for it (same kind, mode, mtime).
    pub recorded_same: bool,
}

/// One thing to do at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Leave it, and say why.
    Refuse(String),
    /// The rules ignore it here: leave it.
    Ignored,
    /// Already as the manifest says.
    Nothing,
    /// Remove the file (or link) there.
    RemoveFile,
    /// Remove the folder if it is empty, after its children.
    RemoveDir,
    /// Create the folder with the entry's mode; a file or link there goes first: an edited
    /// file is moved aside under this name, anything else removed.
    MakeDir {
        /// The conflict name an edited file in the way is kept under.
        keep_local_as: Option<String>,
    },
    /// Replace what is there (not a folder) with the link; an edited file is moved aside under
    /// this name first.
    MakeLink {
        /// The conflict name an edited file in the way is kept under.
        keep_local_as: Option<String>,
    },
    /// A folder is in the way of a file or link: once the pass's deletions are done, remove it
    /// if empty, else move it aside under a conflict name (it holds what was not deleted
    /// everywhere); then write the file or make the link.
    ClearDir,
    /// The content has not arrived: wait. With `plan`, the file may be written during the
    /// transfer (nothing is there, or an unedited file); else the pass after it decides.
    Wait {
        /// Whether it may be written while the transfer goes on.
        plan: bool,
    },
    /// The file already holds the entry's content: record it as written, touch nothing.
    Adopt,
    /// Write the file; first move the local edit aside under this name, when there is one.
    Write {
        /// The conflict name the local edit is kept under.
        keep_local_as: Option<String>,
    },
}

/// What [`decide`] may ask the engine, each only where the answer matters (a store look-up or
/// a read of the file per path on every pass would cost more than the pass).
pub trait Ask {
    /// What asking can fail with.
    type Error;
    /// Every blob of the entry's content is stored.
    fn content_here(&mut self) -> Result<bool, Self::Error>;
    /// The regular file at the path holds exactly the entry's content (asked only when the
    /// content is here and the file changed since the last scan).
    fn holds_content(&mut self) -> Result<bool, Self::Error>;
}

/// [`Ask`] from two closures.
pub struct Asking<C, H>(pub C, pub H);

impl<E, C: FnMut() -> Result<bool, E>, H: FnMut() -> Result<bool, E>> Ask for Asking<C, H> {
    type Error = E;
    fn content_here(&mut self) -> Result<bool, E> {
        (self.0)()
    }
    fn holds_content(&mut self) -> Result<bool, E> {
        (self.1)()
    }
}

/// Decide what to do at `path` (already validated) for `entry`. `device` names this device in
/// a conflict copy of a local edit.
pub fn decide<A: Ask>(
    path: &str,
    entry: &Entry,
    seen: &Seen,
    ignores: &Ignores,
    device: &[u8; 8],
    ask: &mut A,
) -> Result<Action, A::Error> {
    let local = &seen.local;
    let is_dir = matches!(entry.kind, Kind::Dir) || local.is_dir();
    if ignores.covers(path, is_dir) {
        return Ok(Action::Ignored);
    }
    if seen.recorded_same {
        // No incoming change touched this path since this device recorded it: whatever is
        // there now (a save, a delete, a rename made since the scan, or nothing new) is the
        // next scan's to record, not the materialiser's to undo.
        return Ok(Action::Nothing);
    }
    Ok(match &entry.kind {
        Kind::Deleted => match local {
            Local::Absent => Action::Nothing,
            Local::Dir => Action::RemoveDir,
            l if l.edited() => Action::Nothing,
            _ => Action::RemoveFile,
        },
        Kind::Dir => match local {
            Local::Dir => Action::Nothing,
            _ => Action::MakeDir { keep_local_as: kept(path, local, device) },
        },
        Kind::Symlink { target } => match local {
            Local::Other { link_target: Some(t) } if t == target => Action::Nothing,
            Local::Dir => Action::ClearDir,
            _ => Action::MakeLink { keep_local_as: kept(path, local, device) },
        },
        Kind::File { .. } => {
            if !ask.content_here()? {
                let plan = matches!(local, Local::Absent | Local::File { edited: false, .. });
                return Ok(Action::Wait { plan });
            }
            match local {
                // Compared by content, not times: a file another pass or session of this
                // device wrote meanwhile, or the same edit made elsewhere, is no conflict.
                Local::File { edited: true, .. } if ask.holds_content()? => Action::Adopt,
                Local::File { edited: true, mtime_ns } => {
                    Action::Write { keep_local_as: Some(conflict_name(path, *mtime_ns, device)) }
                }
                Local::Dir => Action::ClearDir,
                _ => Action::Write { keep_local_as: None },
            }
        }
    })
}

/// The conflict name an edited file in the way is kept under.
fn kept(path: &str, local: &Local, device: &[u8; 8]) -> Option<String> {
    match local {
        Local::File { edited: true, mtime_ns } => Some(conflict_name(path, *mtime_ns, device)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Content;
    use crate::ids::BlobId;
    use proptest::prelude::*;

    const DEV: [u8; 8] = [0xab; 8];

    fn file() -> Entry {
        Entry {
            kind: Kind::File { size: 3, content: Content::Single(BlobId([1; 32])) },
            mtime_ns: 5,
            mode: 0o644,
            device: [1; 8],
        }
    }

    fn with(kind: Kind) -> Entry {
        Entry { kind, ..file() }
    }

    fn seen(local: Local) -> Seen {
        Seen { local, recorded_same: false }
    }

    /// [`decide`] with the content here or not (a file on disk never holds it).
    fn decide_with(path: &str, entry: &Entry, seen: &Seen, ignores: &Ignores, here: bool) -> Action {
        decide_asking(path, entry, seen, ignores, here, false)
    }

    fn decide_asking(path: &str, entry: &Entry, seen: &Seen, ignores: &Ignores, here: bool, holds: bool) -> Action {
        let mut ask = Asking(|| Ok::<_, ()>(here), || Ok::<_, ()>(holds));
        decide(path, entry, seen, ignores, &DEV, &mut ask).unwrap_or_else(|()| unreachable!())
    }

    fn d(path: &str, entry: &Entry, seen: &Seen, ignores: &Ignores, _dev: &[u8; 8]) -> Action {
        decide_with(path, entry, seen, ignores, true)
    }

    fn edited() -> Local {
        Local::File { edited: true, mtime_ns: 0 }
    }

    #[test]
    fn a_local_edit_is_kept_aside_never_overwritten_or_deleted() {
        let none = Ignores::none();
        assert_eq!(
            d("a/b.txt", &file(), &seen(edited()), &none, &DEV),
            Action::Write { keep_local_as: Some("a/b.sync-conflict-19700101-000000-abababab.txt".into()) }
        );
        assert_eq!(d("a/b.txt", &with(Kind::Deleted), &seen(edited()), &none, &DEV), Action::Nothing);
        let unedited = Local::File { edited: false, mtime_ns: 0 };
        assert_eq!(d("a/b.txt", &with(Kind::Deleted), &seen(unedited), &none, &DEV), Action::RemoveFile);
    }

    #[test]
    fn up_to_date_files_waiting_files_and_what_is_in_the_way() {
        let none = Ignores::none();
        let unedited = Local::File { edited: false, mtime_ns: 5 };
        let same = Seen { local: unedited.clone(), recorded_same: true };
        assert_eq!(d("f", &file(), &same, &none, &DEV), Action::Nothing);
        let missing = |local| decide_with("f", &file(), &seen(local), &Ignores::none(), false);
        assert_eq!(missing(Local::Absent), Action::Wait { plan: true });
        assert_eq!(missing(unedited), Action::Wait { plan: true });
        assert_eq!(missing(edited()), Action::Wait { plan: false });
        assert_eq!(missing(Local::Dir), Action::Wait { plan: false });
        // Kind changes: a folder in the way is cleared (removed, or moved aside if not empty).
        assert_eq!(d("f", &file(), &seen(Local::Dir), &none, &DEV), Action::ClearDir);
        let link = with(Kind::Symlink { target: "t".into() });
        assert_eq!(d("l", &link, &seen(Local::Dir), &none, &DEV), Action::ClearDir);
        assert!(matches!(d("l", &link, &seen(edited()), &none, &DEV), Action::MakeLink { keep_local_as: Some(_) }));
        assert_eq!(d("l", &link, &seen(Local::Other { link_target: Some("t".into()) }), &none, &DEV), Action::Nothing);
        let relinked = d("l", &link, &seen(Local::Other { link_target: Some("u".into()) }), &none, &DEV);
        assert_eq!(relinked, Action::MakeLink { keep_local_as: None });
        assert_eq!(d("d", &with(Kind::Dir), &seen(Local::Dir), &none, &DEV), Action::Nothing);
        assert_eq!(
            d("d", &with(Kind::Dir), &seen(Local::Absent), &none, &DEV),
            Action::MakeDir { keep_local_as: None }
        );
        let unedited_file = Local::File { edited: false, mtime_ns: 0 };
        assert_eq!(
            d("d", &with(Kind::Dir), &seen(unedited_file), &none, &DEV),
            Action::MakeDir { keep_local_as: None }
        );
        assert!(matches!(
            d("d", &with(Kind::Dir), &seen(edited()), &none, &DEV),
            Action::MakeDir { keep_local_as: Some(_) }
        ));
        assert_eq!(d("d", &with(Kind::Deleted), &seen(Local::Dir), &none, &DEV), Action::RemoveDir);
    }

    #[test]
    fn ignored_paths_and_folders_are_left_alone() {
        let (rules, _) = Ignores::parse("*.log\nbuild/\n");
        assert_eq!(d("x.log", &with(Kind::Deleted), &seen(Local::Absent), &rules, &DEV), Action::Ignored);
        assert_eq!(d("build", &with(Kind::Deleted), &seen(Local::Dir), &rules, &DEV), Action::Ignored);
        assert_eq!(d("build/a", &file(), &seen(Local::Absent), &rules, &DEV), Action::Ignored);
    }

    #[test]
    fn a_local_change_where_no_incoming_change_touched_the_path_stands() {
        let none = Ignores::none();
        // The manifest holds what this device last recorded: a save, delete or rename made
        // since is left for the next scan, never undone or moved aside.
        for local in [edited(), Local::Absent, Local::Dir, Local::Other { link_target: None }] {
            let s = Seen { local: local.clone(), recorded_same: true };
            for kind in [file().kind, Kind::Dir, Kind::Deleted, Kind::Symlink { target: "t".into() }] {
                assert_eq!(
                    decide_with("a/b.txt", &with(kind.clone()), &s, &none, true),
                    Action::Nothing,
                    "{local:?} {kind:?}"
                );
            }
        }
    }

    #[test]
    fn a_file_that_already_holds_the_new_version_is_recorded_not_kept_aside() {
        let none = Ignores::none();
        assert_eq!(decide_asking("f", &file(), &seen(edited()), &none, true, true), Action::Adopt);
        // Not asked while the content is missing: it waits, and is not written meanwhile.
        assert_eq!(decide_asking("f", &file(), &seen(edited()), &none, false, true), Action::Wait { plan: false });
        assert!(matches!(
            decide_asking("f", &file(), &seen(edited()), &none, true, false),
            Action::Write { keep_local_as: Some(_) }
        ));
    }

    fn any_local() -> impl Strategy<Value = Local> {
        prop_oneof![
            Just(Local::Absent),
            any::<(bool, i64)>().prop_map(|(edited, mtime_ns)| Local::File { edited, mtime_ns }),
            Just(Local::Dir),
            proptest::option::of("[a-z]{1,3}").prop_map(|link_target| Local::Other { link_target }),
        ]
    }

    fn any_kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            Just(Kind::Deleted),
            Just(Kind::Dir),
            "[a-z]{1,3}".prop_map(|target| Kind::Symlink { target }),
            Just(file().kind),
        ]
    }

    proptest! {
        /// Whatever the manifest says, an edited local file is never removed, never replaced by
        /// a link, and never written over without first being kept aside.
        #[test]
        fn an_edit_is_never_lost(kind in any_kind(), recorded_same in any::<bool>(), content_here in any::<bool>(), mtime in any::<i64>()) {
            let s = Seen { local: Local::File { edited: true, mtime_ns: mtime }, recorded_same };
            let a = decide_with("p/q.txt", &with(kind), &s, &Ignores::none(), content_here);
            prop_assert!(!matches!(a, Action::RemoveFile | Action::RemoveDir | Action::MakeLink { keep_local_as: None } | Action::MakeDir { keep_local_as: None } | Action::Write { keep_local_as: None } | Action::Wait { plan: true }), "{:?}", a);
        }

        /// Whatever interleaving of passes, sessions and scans left the folder as it is: a file
        /// that holds the manifest's content never becomes a conflict copy, and a path whose
        /// entry this device recorded is never touched.
        #[test]
        fn no_phantom_conflicts(kind in any_kind(), local in any_local(), recorded_same in any::<bool>(), content_here in any::<bool>()) {
            let s = Seen { local, recorded_same };
            let a = decide_asking("p/q.txt", &with(kind), &s, &Ignores::none(), content_here, true);
            prop_assert!(!matches!(a, Action::Write { keep_local_as: Some(_) }), "{:?}", a);
            if recorded_same {
                prop_assert_eq!(a, Action::Nothing);
            }
        }

        /// Nothing ignored is ever touched, whatever is there and whatever the manifest says.
        #[test]
        fn ignored_is_never_touched(kind in any_kind(), local in any_local(), recorded_same in any::<bool>(), content_here in any::<bool>()) {
            let (rules, _) = Ignores::parse("*\n");
            let s = Seen { local, recorded_same };
            prop_assert_eq!(decide_with("p/q.txt", &with(kind), &s, &rules, content_here), Action::Ignored);
        }

        /// A folder is never written over: it is removed only when deleted, or cleared (removed
        /// if empty, else moved aside) when the entry is now a file or a link.
        #[test]
        fn a_folder_is_only_removed_by_a_delete(kind in any_kind(), recorded_same in any::<bool>(), content_here in any::<bool>()) {
            let deleted = kind == Kind::Deleted;
            let s = Seen { local: Local::Dir, recorded_same };
            let a = decide_with("d", &with(kind), &s, &Ignores::none(), content_here);
            prop_assert!(!matches!(a, Action::RemoveFile | Action::MakeLink { .. } | Action::MakeDir { .. } | Action::Write { .. } | Action::Wait { plan: true }), "{:?}", a);
            // Removed only for a delete this device has not recorded yet.
            prop_assert_eq!(a == Action::RemoveDir, deleted && !recorded_same);
        }
    }
}
