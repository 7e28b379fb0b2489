//! TAILDIR file groups: `filegroups.<fg> = /dir/regex`, a directory and a regular
//! expression over the names of the regular files in it (the whole name must match, as
//! Java's `PathMatcher` "regex:" requires), and the listing of the files that match.
//!
//! With `cachePatternMatching` (the default) the directory is listed again only when its
//! modification time changed, or when that time is so close to the last listing that a
//! change in the same clock tick could have been missed (Flume's `TaildirMatcher` rule).

use regex::Regex;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// One file group.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub dir: PathBuf,
    /// The expression as written (for messages).
    pub pattern: String,
    /// The expression anchored at both ends.
    pub regex: Regex,
    /// `headers.<fg>.<key>` pairs, in key order.
    pub headers: Vec<(String, String)>,
}

impl Group {
    /// The group `name` for `filegroups.<name> = spec`; an error says what is wrong.
    pub fn new(name: &str, spec: &str) -> Result<Group, String> {
        let path = Path::new(spec);
        let (Some(dir), Some(pattern)) = (path.parent(), path.file_name()) else {
            return Err(format!(
                "'{spec}' is not a directory followed by a file name expression"
            ));
        };
        if dir.as_os_str().is_empty() {
            return Err(format!(
                "'{spec}' has no directory: write /dir/expression, e.g. /var/log/app/.*\\.log"
            ));
        }
        let pattern = pattern.to_string_lossy().into_owned();
        let regex = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| format!("'{pattern}' is not a valid regular expression: {e}"))?;
        Ok(Group {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            pattern,
            regex,
            headers: Vec::new(),
        })
    }

    /// Whether `name` (a file name, not a path) is one of the group's.
    pub fn matches(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }
}

/// The files of a group, listed again when the directory may have changed.
#[derive(Debug, Default)]
pub struct Listing {
    files: Vec<PathBuf>,
    /// The directory's modification time at the last listing, and when that listing was.
    seen: Option<(SystemTime, SystemTime)>,
}

impl Listing {
    /// The regular files of `group` (in no particular order). An unreadable directory
    /// gives the last listing, with the error for the caller to log.
    pub fn files(&mut self, group: &Group, cache: bool) -> (&[PathBuf], Option<std::io::Error>) {
        let mtime = std::fs::metadata(&group.dir).and_then(|m| m.modified());
        let now = SystemTime::now();
        let fresh = match (&mtime, self.seen) {
            (Ok(m), Some((seen_m, listed_at))) if cache => {
                // A change within a second of the last listing may share its mtime.
                *m == seen_m && *m + Duration::from_secs(1) < listed_at
            }
            _ => false,
        };
        if fresh {
            return (&self.files, None);
        }
        match list(group) {
            Ok(files) => {
                self.files = files;
                self.seen = mtime.ok().map(|m| (m, now));
                (&self.files, None)
            }
            Err(e) => (&self.files, Some(e)),
        }
    }
}

fn list(group: &Group) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&group.dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !group.matches(name) {
            continue;
        }
        // Symbolic links are followed, as Java's `Files.isDirectory` does.
        let path = entry.path();
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            out.push(path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_name_must_match() {
        let g = Group::new("f1", "/var/log/app/.*\\.log").unwrap();
        assert_eq!(g.dir, Path::new("/var/log/app"));
        assert!(g.matches("a.log"));
        assert!(!g.matches("a.log.1"));
        assert!(!g.matches("xa.logx"));
        let g = Group::new("f1", "/var/log/app.log|b.log").unwrap();
        assert!(g.matches("app.log") && g.matches("b.log") && !g.matches("app.logb.log"));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let e = Group::new("f1", "/var/log/a[").unwrap_err();
        assert!(e.contains("'a[' is not a valid regular expression"), "{e}");
        let e = Group::new("f1", "a.log").unwrap_err();
        assert!(e.contains("has no directory"), "{e}");
        assert!(Group::new("f1", "/").is_err());
    }

    #[test]
    fn lists_matching_regular_files_and_sees_new_ones() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.log"), "").unwrap();
        std::fs::write(d.path().join("b.txt"), "").unwrap();
        std::fs::create_dir(d.path().join("dir.log")).unwrap();
        let g = Group::new("g", &format!("{}/.*\\.log", d.path().display())).unwrap();
        let mut listing = Listing::default();
        for cache in [true, false] {
            let (files, err) = listing.files(&g, cache);
            assert!(err.is_none());
            assert_eq!(files, [d.path().join("a.log")]);
        }
        // Created right after a listing: within the same second, so listed again.
        std::fs::write(d.path().join("c.log"), "").unwrap();
        let mut files = listing.files(&g, true).0.to_vec();
        files.sort();
        assert_eq!(files, [d.path().join("a.log"), d.path().join("c.log")]);
    }
}
