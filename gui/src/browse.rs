//! A space's files as folders: what one folder holds (its subfolders with their sizes, then its
//! files), in natural order (`n2` before `n10`), and a search over names. Pure: the screens call
//! it with the model's rows and cache what it returns.

use crate::engine::FileRow;
use std::cmp::Ordering;

/// One row of a folder's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Row {
    /// A subfolder: its name, the files under it (at any depth) and their bytes.
    Folder { name: String, files: usize, bytes: u64 },
    /// A file directly in the folder: its index in the space's rows.
    File(usize),
}

/// `a` against `b` as people sort names: runs of digits by their value, the rest by letter
/// without regard to case, then exactly (so the order is total).
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (x.peek().copied(), y.peek().copied()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let take = |it: &mut std::iter::Peekable<std::str::Chars<'_>>| {
                    let mut s = String::new();
                    while let Some(c) = it.peek().copied().filter(char::is_ascii_digit) {
                        s.push(c);
                        it.next();
                    }
                    s
                };
                let (m, n) = (take(&mut x), take(&mut y));
                let (mt, nt) = (m.trim_start_matches('0'), n.trim_start_matches('0'));
                let o = mt.len().cmp(&nt.len()).then_with(|| mt.cmp(nt));
                if o != Ordering::Equal {
                    return o;
                }
            }
            (Some(c), Some(d)) => {
                let o = c.to_lowercase().cmp(d.to_lowercase());
                if o != Ordering::Equal {
                    return o;
                }
                x.next();
                y.next();
            }
        }
    }
}

/// What folder `dir` ("" for the space's root, else `a/b` without a trailing slash) holds:
/// subfolders first, then files, each in natural order.
pub(crate) fn listing(files: &[FileRow], dir: &str) -> Vec<Row> {
    let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
    let mut folders: std::collections::BTreeMap<&str, (usize, u64)> = Default::default();
    let mut here = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let Some(rest) = f.path.strip_prefix(&prefix) else { continue };
        match rest.split_once('/') {
            Some((name, _)) => {
                let e = folders.entry(name).or_default();
                e.0 += 1;
                e.1 += f.size;
            }
            None => here.push(i),
        }
    }
    let mut out: Vec<Row> =
        folders.into_iter().map(|(name, (files, bytes))| Row::Folder { name: name.to_owned(), files, bytes }).collect();
    out.sort_by(|a, b| match (a, b) {
        (Row::Folder { name: x, .. }, Row::Folder { name: y, .. }) => natural_cmp(x, y),
        _ => Ordering::Equal,
    });
    here.sort_by(|&a, &b| natural_cmp(&files[a].path, &files[b].path));
    out.extend(here.into_iter().map(Row::File));
    out
}

/// Files whose name (the last part of the path) holds `query`, case aside, in natural order of
/// their paths; at most `max`.
pub(crate) fn search(files: &[FileRow], query: &str, max: usize) -> Vec<usize> {
    let q = query.trim().to_lowercase();
    if q.is_empty() {
        return Vec::new();
    }
    let mut hits: Vec<usize> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.path.rsplit('/').next().unwrap_or(&f.path).to_lowercase().contains(&q))
        .map(|(i, _)| i)
        .collect();
    hits.sort_by(|&a, &b| natural_cmp(&files[a].path, &files[b].path));
    hits.truncate(max);
    hits
}

/// The folders from the root to `dir`: ("", root name), ("a", "a"), ("a/b", "b").
pub(crate) fn crumbs<'a>(root: &'a str, dir: &'a str) -> Vec<(String, &'a str)> {
    let mut out = vec![(String::new(), root)];
    if dir.is_empty() {
        return out;
    }
    let mut at = String::new();
    for part in dir.split('/') {
        if !at.is_empty() {
            at.push('/');
        }
        at.push_str(part);
        out.push((at.clone(), part));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, size: u64) -> FileRow {
        FileRow { path: path.into(), size, mtime_ns: 0, by: 0 }
    }

    #[test]
    fn names_sort_as_people_count() {
        let mut v = vec!["n10", "n2", "N1", "n1", "a", "n02", "n2b", "B"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["a", "B", "N1", "n1", "n02", "n2", "n2b", "n10"]);
        assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
        assert_eq!(natural_cmp("file99999999999999999999999", "file100000000000000000000000"), Ordering::Less);
    }

    #[test]
    fn a_folder_lists_its_subfolders_with_sizes_then_its_files() {
        let files = vec![
            row("n10.txt", 1),
            row("n2.txt", 2),
            row("budget/2026/q1.csv", 10),
            row("budget/2026/q2.csv", 20),
            row("budget/notes.md", 5),
            row("Archive/old.txt", 7),
        ];
        let root = listing(&files, "");
        assert_eq!(
            root,
            vec![
                Row::Folder { name: "Archive".into(), files: 1, bytes: 7 },
                Row::Folder { name: "budget".into(), files: 3, bytes: 35 },
                Row::File(1),
                Row::File(0),
            ]
        );
        assert_eq!(
            listing(&files, "budget"),
            vec![Row::Folder { name: "2026".into(), files: 2, bytes: 30 }, Row::File(4)]
        );
        assert_eq!(listing(&files, "budget/2026"), vec![Row::File(2), Row::File(3)]);
        assert!(listing(&files, "nowhere").is_empty());
        // "budget" is not a prefix of "budget2/x".
        let more = vec![row("budget2/x", 1), row("budget/y", 1)];
        assert_eq!(listing(&more, "budget"), vec![Row::File(1)]);
    }

    #[test]
    fn search_matches_names_not_folders() {
        let files = vec![row("minutes/n10.txt", 1), row("minutes/n2.txt", 1), row("budget/Minutes.md", 1)];
        assert_eq!(search(&files, "MINUTES", 10), vec![2]);
        assert_eq!(search(&files, "n", 10), vec![2, 1, 0], "natural order of the paths");
        assert_eq!(search(&files, "txt", 1), vec![1]);
        assert!(search(&files, "  ", 10).is_empty());
        assert_eq!(crumbs("co-op", "a/b"), vec![(String::new(), "co-op"), ("a".into(), "a"), ("a/b".into(), "b")]);
    }
}
