//! `.coboxignore`: ignored paths are never recorded, never recorded as deleted, never written,
//! replaced or deleted by the materialiser, and raise no folder-watch event.

use cobox_engine::replica::Replica;
use cobox_engine::{Home, NoProgress, Space};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

fn live_paths(s: &Space) -> Vec<String> {
    s.files().unwrap().into_iter().map(|(p, _)| p).collect()
}

/// Every blob `from` holds, handed to `to` as a sync would.
fn copy_blobs(from: &Space, to: &Space) {
    for id in from.blob_ids().unwrap() {
        to.receive_blob(&id, &from.read_blob(&id).unwrap()).unwrap();
    }
}

fn pause() {
    // Past the scan cache's racy window, so edits are seen by mtime.
    std::thread::sleep(std::time::Duration::from_millis(150));
}

#[test]
fn ignored_paths_are_not_recorded_and_not_deleted() {
    let (home, folder) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let f = folder.path();
    write(&f.join(".coboxignore"), b"# editor and build junk\n*.log\nbuild/\n!keep.log\n");
    write(&f.join("notes.txt"), b"notes");
    write(&f.join("notes.tmp"), b"scratch, recorded before it was ignored");
    write(&f.join("a.log"), b"log");
    write(&f.join("keep.log"), b"kept by a negation");
    write(&f.join("build/x.o"), b"object");
    write(&f.join("sub/build/deep/y.o"), b"object");
    write(&f.join("sub/b.txt"), b"b");
    let h = Home::open(home.path()).unwrap();
    h.create_space("s", f).unwrap();
    let mut s = h.open_space("s").unwrap();
    let r = s.scan(&NoProgress).unwrap();
    assert_eq!(r.ignored, 3, "a.log, build and sub/build: {r:?}");
    assert_eq!(live_paths(&s), [".coboxignore", "keep.log", "notes.tmp", "notes.txt", "sub", "sub/b.txt"]);

    // A recorded file that becomes ignored and then goes away is not deleted for everyone.
    pause();
    write(&f.join(".coboxignore"), b"*.log\nbuild/\n!keep.log\n*.tmp\n");
    fs::remove_file(f.join("notes.tmp")).unwrap();
    pause();
    let r = s.scan(&NoProgress).unwrap();
    assert_eq!((r.deleted, r.changed), (0, 1), "only the rules file changed: {r:?}");
    assert!(live_paths(&s).contains(&"notes.tmp".to_owned()), "still in the manifest");
    assert_eq!(s.pending().unwrap(), Default::default(), "nothing pending either");
}

#[test]
fn the_materialiser_leaves_ignored_paths_alone_until_the_rules_change() {
    let (ha, fa) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (hb, fb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(&fa.path().join("shared.txt"), b"for everyone");
    write(&fa.path().join("a.log"), b"A's log");
    write(&fa.path().join("x.log"), b"A's x");
    let a = Home::open(ha.path()).unwrap();
    a.create_space("s", fa.path()).unwrap();
    let mut sa = a.open_space("s").unwrap();
    sa.scan(&NoProgress).unwrap();

    // B keeps its own logs out, and has an x.log of its own.
    write(&fb.path().join(".coboxignore"), b"*.log\n.coboxignore\n");
    write(&fb.path().join("x.log"), b"B's own x, never synced");
    let b = Home::open(hb.path()).unwrap();
    let inv = Home::invite(ha.path(), "s", &cobox_engine::home::InviteRequest::writer()).unwrap();
    b.join(&inv, fb.path(), None).unwrap();
    // The roster first, as the join session brings it before any blob.
    Home::join_beside(ha.path(), hb.path(), &inv.space).unwrap();
    let mut sb = b.open_space("s").unwrap();
    sb.scan(&NoProgress).unwrap();
    assert!(live_paths(&sb).is_empty(), "B's rules ignore its logs and themselves: {:?}", live_paths(&sb));

    copy_blobs(&sa, &sb);
    let (_, r) = sb.apply_and_materialize().unwrap();
    assert!(r.ignored >= 2, "{r:?}");
    assert_eq!(fs::read(fb.path().join("shared.txt")).unwrap(), b"for everyone");
    assert!(!fb.path().join("a.log").exists(), "an ignored path is not written");
    assert_eq!(fs::read(fb.path().join("x.log")).unwrap(), b"B's own x, never synced", "nor replaced");

    // A deletes x.log: B's own x.log stays.
    pause();
    fs::remove_file(fa.path().join("x.log")).unwrap();
    assert_eq!(sa.scan(&NoProgress).unwrap().deleted, 1);
    copy_blobs(&sa, &sb);
    sb.apply_and_materialize().unwrap();
    assert_eq!(fs::read(fb.path().join("x.log")).unwrap(), b"B's own x, never synced", "nor deleted");

    // Rules that no longer ignore logs: the next pass writes what is now in scope, with no
    // new change from anyone (the rules file is local to B).
    write(&fb.path().join(".coboxignore"), b".coboxignore\n");
    let (n, r) = sb.apply_and_materialize().unwrap();
    assert_eq!(n, 0);
    assert_eq!(fs::read(fb.path().join("a.log")).unwrap(), b"A's log", "{r:?}");
    assert_eq!(fs::read(fb.path().join("x.log")).unwrap(), b"B's own x, never synced", "an unscanned file is kept");
}

#[test]
fn unusable_rules_stop_the_scan_with_a_clear_error_and_bad_lines_are_reported() {
    let (home, folder) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let f = folder.path();
    write(&f.join("secret.env"), b"TOKEN=1");
    let h = Home::open(home.path()).unwrap();
    h.create_space("s", f).unwrap();
    let mut s = h.open_space("s").unwrap();

    let mut big = b"*.env\n".to_vec();
    big.resize(2 << 20, b'#');
    for (rules, says) in [(big, "limit"), (b"*.env\n\xff\xfe\n".to_vec(), "UTF-8")] {
        write(&f.join(".coboxignore"), &rules);
        let err = s.scan(&NoProgress).unwrap_err().to_string();
        assert!(err.contains(".coboxignore") && err.contains(says), "{err}");
        assert!(live_paths(&s).is_empty(), "nothing recorded without the rules");
    }
    fs::remove_file(f.join(".coboxignore")).unwrap();
    fs::create_dir(f.join(".coboxignore")).unwrap();
    let err = s.scan(&NoProgress).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");

    fs::remove_dir(f.join(".coboxignore")).unwrap();
    write(&f.join(".coboxignore"), b"[z-a]\n*.env\n");
    let r = s.scan(&NoProgress).unwrap();
    assert!(r.warnings.iter().any(|w| w.contains("line 1")), "{:?}", r.warnings);
    assert_eq!(live_paths(&s), [".coboxignore"], "the other lines still apply");
}

#[test]
fn the_watcher_raises_nothing_for_ignored_paths() {
    let folder = tempfile::tempdir().unwrap();
    let f = fs::canonicalize(folder.path()).unwrap();
    write(&f.join(".coboxignore"), b"target/\n");
    fs::create_dir(f.join("target")).unwrap();
    // A second folder, watched by the same watcher: events come in order, so once a write
    // there has raised its flag, the writes before it here have been looked at.
    let other = tempfile::tempdir().unwrap();
    let o = fs::canonicalize(other.path()).unwrap();
    let flag = std::sync::Arc::new(AtomicBool::new(false));
    let o_flag = std::sync::Arc::new(AtomicBool::new(false));
    let roots = [
        (cobox_engine::SpaceId([7; 32]), f.clone(), flag.clone()),
        (cobox_engine::SpaceId([8; 32]), o.clone(), o_flag.clone()),
    ];
    let w = cobox_engine::watch::watch(&roots, std::time::Duration::from_millis(50)).unwrap();
    assert!(w.unwatched.is_empty());
    for i in 0..20 {
        write(&f.join(format!("target/debug/out-{i}.o")), b"build output");
    }
    write(&o.join("after.txt"), b"written after the ignored ones");
    let after = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        o_flag.load(Ordering::SeqCst)
    });
    assert!(after, "the other folder's write raised its flag");
    assert!(!flag.load(Ordering::SeqCst), "writes under an ignored folder raise nothing");
    write(&f.join("src.rs"), b"fn main() {}");
    let raised = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        flag.load(Ordering::SeqCst)
    });
    assert!(raised, "a write elsewhere raises the flag");
}
