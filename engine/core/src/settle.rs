//! Settling concurrent versions of a path, the same way on every device: an edit beats a
//! concurrent delete, Automerge's winner keeps the name, and every other live version that
//! differs is kept under a conflict-copy name made from its own mtime and device, so two
//! devices settling the same conflict write identical values.

use crate::entry::{Entry, Kind};

/// What settling one path decided: the value the path keeps, and the conflict copies to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The value written again under the path, superseding the concurrent ones.
    pub winner: Entry,
    /// (conflict-copy path, version) for each other live version that differs.
    pub copies: Vec<(String, Entry)>,
}

/// Settle `versions`, the concurrent values at `path`, given Automerge's `current` winner.
/// `None` when there is nothing to settle (fewer than two values).
pub fn settle(path: &str, versions: &[Entry], current: &Entry) -> Option<Settlement> {
    if versions.len() < 2 {
        return None;
    }
    let versions = distinct(versions);
    let winner = if current.is_live() {
        current.clone()
    } else {
        // An edit beats a concurrent delete.
        versions.iter().find(|e| e.is_live()).cloned().unwrap_or_else(|| current.clone())
    };
    let copies = versions
        .iter()
        .filter(|v| v.is_live() && !v.same_state(&winner) && !matches!(v.kind, Kind::Dir))
        .map(|v| (conflict_name(path, v.mtime_ns, &v.device), v.clone()))
        .collect();
    Some(Settlement { winner, copies })
}

/// Paths whose names normalise alike (Unicode NFC) but differ byte for byte, which show as two
/// identical-looking files: for each group, the path that keeps the name (the one in NFC form,
/// else the smallest) and the others, which become conflict copies of it. The same on every
/// device. ASCII paths, nearly all of them, are passed over without normalising.
pub fn lookalikes<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<(String, Vec<String>)> {
    use unicode_normalization::UnicodeNormalization;
    let mut groups: std::collections::BTreeMap<String, Vec<&str>> = std::collections::BTreeMap::new();
    for p in paths {
        if !p.is_ascii() {
            groups.entry(p.nfc().collect()).or_default().push(p);
        }
    }
    groups
        .into_iter()
        .filter(|(_, g)| g.len() > 1)
        .map(|(nfc, mut g)| {
            g.sort_unstable();
            g.dedup();
            let keep = g.iter().position(|p| *p == nfc).unwrap_or(0);
            let keeper = g.remove(keep).to_owned();
            (keeper, g.into_iter().map(str::to_owned).collect::<Vec<_>>())
        })
        .filter(|(_, others)| !others.is_empty())
        .collect()
}

/// The versions that really differ (not the same state written twice), first seen first.
fn distinct(versions: &[Entry]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for v in versions {
        if !out.iter().any(|o| o.same_state(v)) {
            out.push(v.clone());
        }
    }
    out
}

/// The conflict-copy name of `path` for a version by `device` at `mtime_ns`:
/// `a/b.txt` → `a/b.sync-conflict-20251124-160000-abcdef01.txt` (UTC).
pub fn conflict_name(path: &str, mtime_ns: i64, device: &[u8; 8]) -> String {
    let (dir, file) = match path.rsplit_once('/') {
        Some((d, f)) => (format!("{d}/"), f),
        None => (String::new(), path),
    };
    let (stem, ext) = match file.rfind('.') {
        Some(i) if i > 0 => (&file[..i], &file[i..]),
        _ => (file, ""),
    };
    format!("{dir}{stem}.sync-conflict-{}-{}{ext}", stamp(mtime_ns), hex::encode(&device[..4]))
}

/// The `n`th conflict-copy name (n ≥ 2) when [`conflict_name`]'s is taken by another version:
/// `a/b.sync-conflict-20251124-160000-abcdef01-2.txt`.
pub fn numbered(copy: &str, n: u32) -> String {
    const TAG: &str = ".sync-conflict-";
    let Some(i) = copy.rfind(TAG) else { return format!("{copy}-{n}") };
    let at = (i + TAG.len() + 24).min(copy.len());
    format!("{}-{n}{}", &copy[..at], &copy[at..])
}

/// The path a conflict copy was made for: `a/b.sync-conflict-20251124-160000-abcdef01.txt` → `a/b.txt`.
pub fn conflict_original(copy: &str) -> Option<String> {
    const TAG: &str = ".sync-conflict-";
    let i = copy.rfind(TAG)?;
    let rest = &copy[i + TAG.len()..];
    // YYYYMMDD-HHMMSS-DEV8HEX is 24 characters; then a copy's number (`-2`), if any, and the
    // extension.
    let (stamp, mut ext) = (rest.get(..24)?, rest.get(24..)?);
    if let Some(num) = ext.strip_prefix('-') {
        let digits = num.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        ext = &num[digits..];
    }
    if !(ext.is_empty() || ext.starts_with('.')) {
        return None;
    }
    let ok = stamp.bytes().enumerate().all(|(k, b)| if k == 8 || k == 15 { b == b'-' } else { b.is_ascii_hexdigit() });
    (ok && !ext.contains('/')).then(|| format!("{}{ext}", &copy[..i]))
}

/// `YYYYMMDD-HHMMSS` in UTC for nanoseconds since the epoch (the civil calendar from day counts,
/// Howard Hinnant's algorithm), so names need no clock or time zone library.
fn stamp(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Content;
    use crate::ids::BlobId;
    use proptest::prelude::*;

    fn file(n: u8, mtime_ns: i64, device: u8) -> Entry {
        Entry {
            kind: Kind::File { size: u64::from(n), content: Content::Single(BlobId([n; 32])) },
            mtime_ns,
            mode: 0o644,
            device: [device; 8],
        }
    }

    fn deleted(mtime_ns: i64) -> Entry {
        Entry { kind: Kind::Deleted, mtime_ns, mode: 0, device: [9; 8] }
    }

    #[test]
    fn stamps_match_the_calendar() {
        assert_eq!(stamp(0), "19700101-000000");
        // 2025-11-24T16:00:00Z
        assert_eq!(stamp(1_764_000_000 * 1_000_000_000), "20251124-160000");
        // 2000-02-29T23:59:59Z, a leap day
        assert_eq!(stamp(951_868_799 * 1_000_000_000), "20000229-235959");
        assert_eq!(stamp(-1_000_000_000), "19691231-235959");
    }

    #[test]
    fn names_that_normalise_alike_are_one_name() {
        let (nfc, nfd) = ("d/caf\u{e9}.txt", "d/cafe\u{301}.txt");
        let g = lookalikes([nfd, "plain.txt", nfc, "d/other\u{e9}.txt"]);
        assert_eq!(g, vec![(nfc.to_owned(), vec![nfd.to_owned()])]);
        // Without the NFC form, the smallest keeps the name; the order never matters.
        // The Angstrom sign and A with a combining ring both normalise to U+00C5.
        let (a, b) = ("x/\u{212b}", "x/A\u{30a}");
        assert_eq!(lookalikes([a, b]), vec![(b.to_owned(), vec![a.to_owned()])]);
        assert_eq!(lookalikes([a, b]), lookalikes([b, a]));
        assert!(lookalikes(["a.txt", "b.txt"]).is_empty());
    }

    #[test]
    fn an_edit_beats_a_concurrent_delete() {
        let edit = file(1, 5, 1);
        let s = settle("a.txt", &[deleted(9), edit.clone()], &deleted(9)).unwrap();
        assert_eq!(s.winner, edit);
        assert!(s.copies.is_empty());
    }

    #[test]
    fn the_loser_is_kept_under_its_own_name_and_duplicates_are_not_conflicts() {
        let (a, b) = (file(1, 1_764_000_000_000_000_000, 1), file(2, 7, 2));
        let s = settle("d/a.txt", &[a.clone(), b.clone(), a.clone()], &a).unwrap();
        assert_eq!(s.winner, a);
        assert_eq!(s.copies, vec![("d/a.sync-conflict-19700101-000000-02020202.txt".to_owned(), b)]);
        assert_eq!(settle("x", &[a.clone(), a.clone()], &a).unwrap().copies, vec![]);
        assert_eq!(settle("x", std::slice::from_ref(&a), &a), None);
    }

    proptest! {
        #[test]
        fn a_conflict_name_leads_back_to_its_path(
            dir in "([a-z]{1,8}/){0,3}",
            stem in "[a-zA-Z0-9 _-]{1,12}",
            ext in proptest::option::of("[a-z]{1,4}"),
            ns in -4_000_000_000_000_000_000i64..4_000_000_000_000_000_000,
            dev in any::<[u8; 8]>(),
        ) {
            let path = format!("{dir}{stem}{}", ext.map(|e| format!(".{e}")).unwrap_or_default());
            let name = conflict_name(&path, ns, &dev);
            prop_assert_eq!(conflict_original(&name), Some(path.clone()));
            prop_assert_eq!(conflict_original(&numbered(&name, 7)), Some(path));
        }

        #[test]
        fn settling_does_not_depend_on_the_order_versions_arrive_in(
            mtimes in proptest::collection::vec(0i64..5, 2..6),
            current in 0usize..6,
        ) {
            // A device writes one content per mtime: equal states come from one device.
            let versions: Vec<Entry> = mtimes.iter().enumerate().map(|(i, m)| file(i as u8 % 3, *m, i as u8 % 3)).collect();
            let current = versions[current % versions.len()].clone();
            let mut reversed = versions.clone();
            reversed.reverse();
            let (a, b) = (settle("p", &versions, &current).unwrap(), settle("p", &reversed, &current).unwrap());
            prop_assert_eq!(&a.winner, &b.winner);
            let mut na: Vec<String> = a.copies.iter().map(|c| c.0.clone()).collect();
            let mut nb: Vec<String> = b.copies.iter().map(|c| c.0.clone()).collect();
            na.sort();
            nb.sort();
            na.dedup();
            nb.dedup();
            prop_assert_eq!(na, nb);
        }
    }
}
