//! Ignore rules: the paths of a folder that cobox leaves alone. Pure: the caller reads the file.
//!
//! The rules live in `.coboxignore` at the folder's root, in gitignore syntax (`*.log`,
//! `build/`, `/only-at-root`, `**/cache`, `!keep.log`, `#` comments). The file is an ordinary
//! file of the space, so it syncs and the whole collective shares one set of rules; a device that
//! wants rules of its own lists `.coboxignore` in itself, which keeps later edits local.
//!
//! An ignored path is invisible to the scanner (never recorded, never recorded as deleted) and
//! untouched by the materialiser (never written, replaced or deleted), so ignoring a path that
//! other devices already have loses nothing anywhere: it only stops this device taking part.

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// The rules file at a folder's root.
pub const IGNORE_FILE: &str = ".coboxignore";
/// Larger rules files are not read (a hostile or mistaken peer could sync a huge one).
pub const MAX_IGNORE_FILE: u64 = 1 << 20;

/// A folder's ignore rules.
#[derive(Clone)]
pub struct Ignores {
    matcher: Option<Gitignore>,
    digest: [u8; 32],
}

impl Default for Ignores {
    fn default() -> Self {
        Self::none()
    }
}

impl std::fmt::Debug for Ignores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ignores").field("rules", &self.matcher.as_ref().map_or(0, Gitignore::len)).finish()
    }
}

impl Ignores {
    /// No rules: nothing is ignored.
    pub fn none() -> Self {
        Self { matcher: None, digest: *blake3::hash(b"").as_bytes() }
    }

    /// Parse a rules file. A line that is not a valid pattern is left out with a warning (its
    /// number and why); the other lines still apply.
    pub fn parse(text: &str) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        // Paths are matched relative to the folder's root, given as relative paths.
        let mut b = GitignoreBuilder::new("");
        for (n, line) in text.lines().enumerate() {
            if let Err(e) = b.add_line(None, line) {
                warnings.push(format!("{IGNORE_FILE} line {}: {e}; the line is left out", n + 1));
            }
        }
        let matcher = match b.build() {
            Ok(m) if m.is_empty() => None,
            Ok(m) => Some(m),
            Err(e) => {
                warnings.push(format!("{IGNORE_FILE}: {e}; no path is ignored"));
                None
            }
        };
        (Self { matcher, digest: *blake3::hash(text.as_bytes()).as_bytes() }, warnings)
    }

    /// True when a path (relative, `/`-separated) is ignored by a rule naming it. Its parent
    /// folders are not looked at: a walk that skips ignored folders never reaches their children.
    pub fn ignores(&self, path: &str, is_dir: bool) -> bool {
        self.matcher.as_ref().is_some_and(|m| m.matched(path, is_dir).is_ignore())
    }

    /// True when a path, or any folder above it, is ignored.
    pub fn covers(&self, path: &str, is_dir: bool) -> bool {
        if self.matcher.is_none() {
            return false;
        }
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            if self.ignores(&path[..end], true) {
                return true;
            }
            end += 1;
        }
        self.ignores(path, is_dir)
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// Identifies the rules' text: a pass of the materialiser is current only for the rules it
    /// ran with.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules(text: &str) -> Ignores {
        let (r, warnings) = Ignores::parse(text);
        assert!(warnings.is_empty(), "{warnings:?}");
        r
    }

    #[test]
    fn gitignore_syntax() {
        let r = rules("# build output\n*.log\nbuild/\n/top.txt\n**/cache\n!keep.log\n\n");
        assert!(r.ignores("a.log", false));
        assert!(r.ignores("deep/er/a.log", false));
        assert!(!r.ignores("keep.log", false), "a negation re-includes");
        assert!(r.ignores("build", true));
        assert!(!r.ignores("build", false), "a trailing slash matches folders only");
        assert!(r.ignores("sub/build", true));
        assert!(r.ignores("top.txt", false));
        assert!(!r.ignores("sub/top.txt", false), "a leading slash anchors at the root");
        assert!(r.ignores("x/y/cache", true));
        assert!(!r.ignores("notes.txt", false));
    }

    #[test]
    fn covers_looks_at_every_parent() {
        let r = rules("node_modules/\n/out\ndocs/tmp\n");
        assert!(r.covers("docs/tmp/a", false));
        assert!(!r.covers("x/docs/tmp/a", false), "an inner slash anchors at the root too");
        assert!(r.covers("web/node_modules/left-pad/index.js", false));
        assert!(r.covers("out/a/b", false));
        assert!(!r.covers("src/out/a", false), "anchored at the root only");
        assert!(!r.covers("web/node_modules_old/x", false));
        assert!(!r.ignores("web/node_modules/left-pad/index.js", false), "ignores looks at the path alone");
    }

    #[test]
    fn bad_lines_are_reported_and_the_rest_apply() {
        let (r, warnings) = Ignores::parse("*.tmp\n[z-a]\n*.bak\n");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("line 2"), "{}", warnings[0]);
        assert!(r.ignores("a.tmp", false) && r.ignores("b.bak", false));
    }

    #[test]
    fn no_rules_ignore_nothing_and_digests_tell_texts_apart() {
        let none = Ignores::none();
        assert!(none.is_empty() && !none.covers("a/b.log", false));
        let (only_comments, _) = Ignores::parse("# nothing\n\n");
        assert!(only_comments.is_empty());
        assert_ne!(rules("*.log").digest(), rules("*.tmp").digest());
        assert_eq!(none.digest(), Ignores::parse("").0.digest());
    }

    proptest! {
        /// Any text parses without panicking, and a path under an ignored folder is covered.
        #[test]
        fn any_text_parses(text in "\\PC{0,200}", path in "[a-z]{1,4}(/[a-z]{1,4}){0,3}") {
            let (r, _) = Ignores::parse(&text);
            let _ = r.covers(&path, false);
            let dir = path.split('/').next().unwrap_or("a").to_owned();
            let (d, _) = Ignores::parse(&format!("/{dir}/"));
            let child = format!("{dir}/x");
            prop_assert!(d.covers(&child, false));
        }
    }
}
