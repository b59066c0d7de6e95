//! Issue: the single-device core (scan, store, manifest, restore, history, verify, gc).

use crate::util::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn rich_tree(root: &Path) {
    write(&root.join("empty.txt"), b"");
    write(&root.join("nested/a/b/c/deep.txt"), b"deep inside\n");
    write(&root.join("unicode names/Grüße aus Köln — 日本語.txt"), "hallo welt\n".repeat(100).as_bytes());
    write(&root.join("big.bin"), &random_bytes(100 << 20, 1));
    write(&root.join("bin/run.sh"), b"#!/bin/sh\necho hi\n");
    fs::set_permissions(root.join("bin/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(root.join("empty dir")).unwrap();
    std::os::unix::fs::symlink("nested/a", root.join("link to a")).unwrap();
}

#[test]
fn ids_and_spaces() {
    let dev = Device::new();
    let id = dev.ok(&["id"]).trim().to_owned();
    assert_eq!(id.len(), 64);
    assert_eq!(dev.json(&["id"])["device_id"], id.as_str());
    let folder = tempfile::tempdir().unwrap();
    let space = create_space(&dev, "photos", folder.path());
    let list = dev.json(&["space", "list"]);
    assert_eq!(list[0]["name"], "photos");
    assert_eq!(list[0]["id"], space.as_str());
    // By id, by id prefix and by name all name the same space.
    for q in [space.as_str(), &space[..8], "photos"] {
        assert_eq!(dev.json(&["status", q])["id"], space.as_str());
    }
    let err = dev.fails(&["space", "create", "photos", "--path", folder.path().to_str().unwrap()]);
    assert!(err.contains("already exists"), "{err}");
    let err = dev.fails(&["status", "nope"]);
    assert!(err.starts_with("error: ") && err.contains("no space named \"nope\""), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line on stderr: {err}");
    // A folder inside another space's is refused (its files would be recorded twice), and a
    // folder made for the attempt is removed again.
    let inner = folder.path().join("inner");
    let err = dev.fails(&["space", "create", "nested", "--path", inner.to_str().unwrap()]);
    assert!(err.contains("is inside or holds the folder of space \"photos\""), "{err}");
    assert!(!inner.exists(), "the folder made for it is gone");
    // A new folder is made, and the user told.
    let fresh = tempfile::tempdir().unwrap();
    let typo = fresh.path().join("fotos");
    let out = dev.run(&["space", "create", "other", "--path", typo.to_str().unwrap()]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("created the folder"));
    // History of a path never in the space is an error that says why; "1 state", not "1 states".
    let err = dev.fails(&["history", "photos", "no/such.txt"]);
    assert!(err.contains("it was never in this space"), "{err}");
    write(&folder.path().join("album/one.jpg"), b"a photo");
    let out = dev.ok(&["scan", "photos"]);
    assert!(out.starts_with("scanned 1 file, 1 folder and 0 links (7 B): 2 added,"), "the counts add up: {out}");
    let st = dev.ok(&["status", "photos"]);
    assert!(st.contains("history   1 state\n"), "{st}");
}

#[test]
fn scan_then_restore_is_byte_identical() {
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    rich_tree(folder.path());
    create_space(&dev, "docs", folder.path());
    // Files modified within 100 ms of a scan are re-read by the next one (their mtime could
    // hide a later edit), so let the clock move past that window first.
    std::thread::sleep(std::time::Duration::from_millis(150));
    let r = dev.json(&["scan", "docs"]);
    assert_eq!(r["files"], 5);
    assert_eq!(r["added"], 5 + 7 + 1, "5 files, 7 dirs, 1 symlink: {r}");
    assert!(r["bytes_read"].as_u64().unwrap() >= 100 << 20);
    assert!(r["warnings"].as_array().unwrap().is_empty(), "{r}");

    let out = tempfile::tempdir().unwrap();
    dev.ok(&["restore", "docs", out.path().to_str().unwrap()]);
    assert_eq!(snapshot(folder.path()), snapshot(out.path()));

    // An unchanged folder rescans from metadata alone and records nothing.
    let r = dev.json(&["scan", "docs"]);
    assert_eq!((r["added"].as_u64(), r["changed"].as_u64(), r["deleted"].as_u64()), (Some(0), Some(0), Some(0)));
    assert_eq!(r["bytes_read"], 0);
    assert!(r["snapshot"].is_null());

    let s = dev.json(&["status", "docs"]);
    assert_eq!(s["files"], 5);
    assert_eq!(s["bytes"].as_u64().unwrap(), (100 << 20) + 12 + 1100 + 18);
    assert!(s["stored_bytes"].as_u64().unwrap() > 100 << 20);
    assert_eq!(s["pending"], serde_json::json!({"added": 0, "changed": 0, "deleted": 0}));
    assert!(s["last_scan"].is_string());
    write(&folder.path().join("new.txt"), b"new");
    fs::remove_file(folder.path().join("empty.txt")).unwrap();
    let s = dev.json(&["status", "docs"]);
    assert_eq!(s["pending"], serde_json::json!({"added": 1, "changed": 0, "deleted": 1}));
}

#[test]
fn history_and_restore_at_an_earlier_time() {
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    let f = folder.path();
    write(&f.join("a.txt"), b"one");
    write(&f.join("b.txt"), b"two");
    write(&f.join("dir/c.txt"), &random_bytes(3 << 20, 9));
    create_space(&dev, "s", f);
    std::thread::sleep(std::time::Duration::from_millis(150));
    dev.ok(&["scan", "s"]);
    let before = snapshot(f);
    let h1 = dev.json(&["history", "s"]);
    let (id1, t1) = (h1[0]["id"].as_str().unwrap().to_owned(), h1[0]["time"].as_str().unwrap().to_owned());

    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&f.join("a.txt"), b"one, edited");
    fs::remove_file(f.join("b.txt")).unwrap();
    fs::rename(f.join("dir/c.txt"), f.join("dir/renamed.txt")).unwrap();
    write(&f.join("d.txt"), b"four");
    let r = dev.json(&["scan", "s"]);
    assert_eq!((r["changed"].as_u64(), r["deleted"].as_u64(), r["added"].as_u64()), (Some(1), Some(2), Some(2)), "{r}");
    assert_eq!(r["renamed"], 1);
    assert_eq!(r["new_blobs"], 2, "the renamed file's chunks are reused: {r}");
    assert_eq!(r["bytes_read"], 11 + 4, "only the edited and the new file are read, not the renamed one: {r}");

    let h = dev.json(&["history", "s"]);
    assert_eq!(h.as_array().unwrap().len(), 2);
    assert_ne!(h[0]["id"], id1.as_str(), "newest first");
    let ha = dev.json(&["history", "s", "a.txt"]);
    let actions: Vec<&str> = ha.as_array().unwrap().iter().map(|x| x["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["changed", "added"]);
    let hb = dev.json(&["history", "s", "b.txt"]);
    assert_eq!(hb[0]["action"], "deleted");

    for at in [t1.as_str(), id1.as_str()] {
        let out = tempfile::tempdir().unwrap();
        dev.ok(&["restore", "s", out.path().to_str().unwrap(), "--at", at]);
        assert_eq!(snapshot(out.path()), before, "restore --at {at}");
    }
    let out = tempfile::tempdir().unwrap();
    dev.ok(&["restore", "s", out.path().to_str().unwrap()]);
    assert_eq!(snapshot(out.path()), snapshot(f));
    let out = tempfile::tempdir().unwrap();
    dev.ok(&["restore", "s", out.path().to_str().unwrap(), "--path", "dir"]);
    assert_eq!(snapshot(out.path()).keys().cloned().collect::<Vec<_>>(), ["dir", "dir/renamed.txt"]);
    // A file of the user's under a name the restore writes: refused, the file kept, unless --overwrite.
    fs::write(out.path().join("dir/renamed.txt"), b"mine").unwrap();
    let err = dev.fails(&["restore", "s", out.path().to_str().unwrap(), "--path", "dir"]);
    assert!(err.contains("would replace 1 existing file") && err.contains("--overwrite"), "{err}");
    assert_eq!(fs::read(out.path().join("dir/renamed.txt")).unwrap(), b"mine");
    dev.ok(&["restore", "s", out.path().to_str().unwrap(), "--path", "dir", "--overwrite"]);
    assert_ne!(fs::read(out.path().join("dir/renamed.txt")).unwrap(), b"mine");

    let err = dev.fails(&["restore", "s", out.path().to_str().unwrap(), "--at", "2001-01-01T00:00:00Z"]);
    assert!(err.contains("nothing was recorded at or before"), "{err}");
    let err = dev.fails(&["restore", "s", out.path().to_str().unwrap(), "--at", "yesterday"]);
    assert!(err.contains("neither an RFC 3339 time"), "{err}");
    let err = dev.fails(&["restore", "s", out.path().to_str().unwrap(), "--path", "../etc"]);
    assert!(err.contains("invalid path"), "{err}");

    // Deleted files: listed newest first, and one put back as it was, through a daemon.
    let gone = dev.json(&["history", "s", "--deleted"]);
    let mut paths: Vec<&str> = gone.as_array().unwrap().iter().map(|d| d["path"].as_str().unwrap()).collect();
    paths.sort();
    assert_eq!(paths, ["b.txt", "dir/c.txt"], "{gone}");
    let d = Daemon::start(&dev);
    let err = dev.fails(&["undelete", "s", "a.txt"]);
    assert!(err.contains("is not deleted"), "{err}");
    dev.ok(&["undelete", "s", "b.txt"]);
    assert_eq!(fs::read(f.join("b.txt")).unwrap(), b"two");
    let gone = dev.json(&["history", "s", "--deleted"]);
    assert_eq!(gone.as_array().unwrap().len(), 1, "{gone}");
    drop(d);
}

#[test]
fn a_flipped_byte_fails_verify_and_restore_naming_the_blob() {
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    write(&folder.path().join("data.bin"), &random_bytes(3 << 20, 4));
    write(&folder.path().join("note.txt"), b"a note");
    create_space(&dev, "s", folder.path());
    dev.ok(&["scan", "s"]);
    assert!(dev.ok(&["verify", "s"]).contains("all blobs intact"));

    dev.flip_a_byte();

    let out = dev.run(&["verify", "s"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with("corrupt blob ")).unwrap_or_else(|| panic!("{stdout}"));
    let blob = line.split_whitespace().nth(2).unwrap().to_owned();
    assert!(line.contains("data.bin"), "names the affected file: {line}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&blob) && stderr.trim_end().lines().count() == 1, "{stderr}");

    let target = tempfile::tempdir().unwrap();
    let err = dev.fails(&["restore", "s", target.path().to_str().unwrap()]);
    assert!(err.contains(&blob), "restore names the corrupt blob: {err}");
    assert!(!target.path().join("data.bin").exists(), "no damaged file is left behind");
    assert_eq!(fs::read(target.path().join("note.txt")).unwrap(), b"a note", "the rest is restored");
}

#[test]
fn odd_inputs_are_reported_and_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let f = folder.path();
    write(&outside.path().join("secret.txt"), b"outside the folder");
    write(&f.join("ok.txt"), b"fine");
    write(&f.join(std::ffi::OsStr::from_bytes(b"bad-\xff-name.txt")), b"x");
    std::os::unix::fs::symlink(outside.path(), f.join("escape")).unwrap();
    let fifo = f.join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    create_space(&dev, "s", f);
    let r = dev.json(&["scan", "s"]);
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("not valid UTF-8"), "{warnings}");
    assert!(warnings.contains("not a regular file"), "{warnings}");
    assert_eq!(r["files"], 1, "only ok.txt is a file here: {r}");
    assert_eq!(r["symlinks"], 1);
    let out = tempfile::tempdir().unwrap();
    dev.ok(&["restore", "s", out.path().to_str().unwrap()]);
    assert_eq!(fs::read_link(out.path().join("escape")).unwrap(), outside.path(), "links stay links");
    assert_eq!(dev.json(&["status", "s"])["bytes"], 4, "nothing from outside the folder was stored");

    // Unreadable files are skipped with a warning; as root everything is readable.
    let unreadable = f.join("locked.txt");
    write(&unreadable, b"locked");
    fs::set_permissions(&unreadable, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read(&unreadable).is_err() {
        let r = dev.json(&["scan", "s"]);
        assert!(r["warnings"].to_string().contains("locked.txt"), "{r}");
    }
}

#[test]
fn gc_keeps_history_unless_told_to_prune() {
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("data.bin");
    write(&file, &random_bytes(4 << 20, 1));
    create_space(&dev, "s", folder.path());
    dev.ok(&["scan", "s"]);
    let first = dev.json(&["history", "s"])[0]["id"].as_str().unwrap().to_owned();
    write(&file, &random_bytes(4 << 20, 2));
    dev.ok(&["scan", "s"]);

    let r = dev.json(&["gc", "s"]);
    assert_eq!(r["blobs_removed"], 0, "every state is retained by default: {r}");
    let out = tempfile::tempdir().unwrap();
    dev.ok(&["restore", "s", out.path().to_str().unwrap(), "--at", &first]);
    assert_eq!(fs::read(out.path().join("data.bin")).unwrap(), random_bytes(4 << 20, 1));

    let r = dev.json(&["gc", "s", "--keep-within", "0s"]);
    // Chunk counts vary with the space key (4 MiB can be one chunk); the old version's bytes
    // do not.
    assert!(r["blobs_removed"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["bytes_freed"].as_u64().unwrap() >= 4 << 20, "{r}");
    let err = dev.fails(&["restore", "s", out.path().to_str().unwrap(), "--at", &first]);
    assert!(err.contains("pruned"), "{err}");
    // `status` counts the states `history` offers.
    let offered = dev.json(&["history", "s"]).as_array().unwrap().len() as u64;
    assert_eq!(dev.json(&["status", "s"])["snapshots"], offered);
    dev.ok(&["verify", "s"]);
    let out = tempfile::tempdir().unwrap();
    dev.ok(&["restore", "s", out.path().to_str().unwrap()]);
    assert_eq!(fs::read(out.path().join("data.bin")).unwrap(), random_bytes(4 << 20, 2));
    let err = dev.fails(&["gc", "s", "--keep-within", "soon"]);
    assert!(err.contains("not a duration"), "{err}");
}

#[test]
fn a_second_process_is_refused_with_the_owners_pid() {
    let dev = Device::new();
    dev.ok(&["id"]);
    let _held = cobox_engine::Home::open(dev.home.path()).unwrap();
    // Held by a process that answers no control socket: a command that needs the lock says whose.
    let folder = tempfile::tempdir().unwrap();
    let err = dev.fails(&["space", "create", "x", "--path", folder.path().to_str().unwrap()]);
    assert!(err.contains(&format!("in use by another cobox process (pid {})", std::process::id())), "{err}");
    // Reading the device id, or listing spaces, needs no lock.
    dev.ok(&["id"]);
    dev.ok(&["space", "list"]);
}

#[test]
#[ignore = "needs root: mounts a tmpfs (CI runs it as root with --ignored)"]
fn a_full_disk_stops_the_scan_and_the_store_still_verifies() {
    let disk = SmallDisk::new("24m");
    let dev = Device { home: tempfile::tempdir_in(disk.0.path()).unwrap() };
    let folder = tempfile::tempdir().unwrap();
    write(&folder.path().join("small.txt"), b"small and fine");
    create_space(&dev, "s", folder.path());
    dev.ok(&["scan", "s"]);
    write(&folder.path().join("huge.bin"), &random_bytes(40 << 20, 3));
    let err = dev.fails(&["scan", "s"]);
    assert!(err.contains("disk full"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    dev.ok(&["verify", "s"]);
    fs::remove_file(folder.path().join("huge.bin")).unwrap();
    write(&folder.path().join("more.txt"), b"more");
    dev.ok(&["scan", "s"]);
    let out = tempfile::tempdir().unwrap();
    dev.ok(&["restore", "s", out.path().to_str().unwrap()]);
    assert_eq!(snapshot(out.path()), snapshot(folder.path()));
}

/// `cobox … | head -1`: output to a pipe whose reader has gone ends quietly with success, as
/// other Unix tools' does. Before: a panic from println! and exit code 101.
#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    create_space(&dev, "s", folder.path());
    for args in [&["id"][..], &["status", "s"], &["member", "list", "s"]] {
        let mut child = dev
            .cmd(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start cobox");
        // The reader goes before the command writes a line.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !err.contains("panicked"), "cobox {args:?}: {:?} {err}", out.status);
    }
}

/// `cobox space remove` forgets a space on this device and leaves its folder; a daemon running
/// is told to stop first.
#[test]
fn a_space_is_removed_and_its_folder_stays() {
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    write(&folder.path().join("keep.txt"), b"mine\n");
    create_space(&dev, "s", folder.path());
    dev.ok(&["scan", "s"]);
    let d = Daemon::start(&dev);
    assert!(dev.fails(&["space", "remove", "s"]).contains("stop it"), "refused beside a daemon");
    d.stop();
    dev.ok(&["space", "remove", "s"]);
    assert_eq!(dev.json(&["space", "list"]), serde_json::json!([]));
    assert_eq!(read(&folder.path().join("keep.txt")), "mine\n", "the folder stays");
    assert!(dev.fails(&["status", "s"]).contains("s"), "gone from this device");
    create_space(&dev, "s", folder.path());
}

/// Names of devices, members and invites follow one rule (1-64 bytes, no control or
/// text-direction characters); an error does not repeat a pasted 10,000-character input; a
/// name that slipped in shows its hidden characters escaped; `logs -n 0` prints nothing.
#[test]
fn names_follow_one_rule_and_errors_stay_short() {
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    create_space(&dev, "s", folder.path());
    let long = "x".repeat(10_000);
    for bad in [long.as_str(), "bo\u{202e}fdp.exe", "tab\there", ""] {
        let err = dev.fails(&["invite", "s", "--name", bad]);
        assert!(err.contains("invalid name") && err.len() < 400, "{err}");
        let err = dev.fails(&["device", "name", bad]);
        assert!(err.contains("invalid name") && err.len() < 400, "{err}");
    }
    let err = dev.fails(&["join", &long, "--path", folder.path().join("j").to_str().unwrap()]);
    assert!(err.len() < 600, "the input is not repeated whole: {} bytes", err.len());
    dev.ok(&["invite", "s", "--name", "Ana's laptop"]);
    let out = dev.run(&["logs", "-n", "0"]);
    assert!(out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(), "{out:?}");
}

/// The packs describe themselves: with the index deleted (and the manifest cache with it) every
/// history state comes back on the next open; with the index truncated, commands say to run
/// `cobox repair`, which sets it aside and rebuilds it. Before: `history` said "no history yet"
/// and `verify` "checked 0 blobs … all intact", and a truncated index failed every command.
#[test]
fn a_lost_or_truncated_index_is_rebuilt_from_the_packs() {
    let dev = Device::new();
    let folder = tempfile::tempdir().unwrap();
    let f = folder.path();
    write(&f.join("a.txt"), b"one");
    write(&f.join("big.bin"), &random_bytes(2 << 20, 3));
    create_space(&dev, "s", f);
    dev.ok(&["scan", "s"]);
    let first = snapshot(f);
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&f.join("a.txt"), b"one, edited");
    write(&f.join("b.txt"), b"two");
    dev.ok(&["scan", "s"]);
    let history = dev.json(&["history", "s"]);
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    let space_dir = fs::read_dir(dev.home.path().join("spaces")).unwrap().flatten().next().unwrap().path();
    let states_restore = |dev: &Device| {
        assert_eq!(dev.json(&["history", "s"]), history, "every history state is back");
        let out = tempfile::tempdir().unwrap();
        dev.ok(&["restore", "s", out.path().to_str().unwrap(), "--at", history[1]["id"].as_str().unwrap()]);
        assert_eq!(snapshot(out.path()), first);
        let out = tempfile::tempdir().unwrap();
        dev.ok(&["restore", "s", out.path().to_str().unwrap()]);
        assert_eq!(snapshot(out.path()), snapshot(f));
    };

    // Lost: the index and the manifest cache deleted.
    fs::remove_file(space_dir.join("index.redb")).unwrap();
    if space_dir.join("manifest").exists() {
        fs::remove_dir_all(space_dir.join("manifest")).unwrap();
    }
    states_restore(&dev);
    let v = dev.json(&["verify", "s"]);
    assert!(v["blobs_checked"].as_u64().unwrap() >= 4, "{v}");
    // Nothing the folder holds is taken for new: the scan records nothing.
    let r = dev.json(&["scan", "s"]);
    assert_eq!((r["added"].as_u64(), r["changed"].as_u64()), (Some(0), Some(0)), "{r}");
    // gc after a loss never deletes what the packs hold.
    dev.ok(&["gc", "s"]);
    states_restore(&dev);

    // Damaged: the index cut in half.
    let index = space_dir.join("index.redb");
    let len = fs::metadata(&index).unwrap().len();
    fs::OpenOptions::new().write(true).open(&index).unwrap().set_len(len / 2).unwrap();
    let err = dev.fails(&["history", "s"]);
    assert!(err.contains("cobox repair"), "{err}");
    let out = dev.run(&["repair", "s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("rebuilt the index") && stderr.contains("kept as"), "{stderr}");
    states_restore(&dev);
    assert!(dev.ok(&["verify", "s"]).contains("all blobs intact"));
}
