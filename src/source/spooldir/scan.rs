//! Listing the spooling directory: which files are candidates and in which order they are
//! read, as Flume's `ReliableSpoolingFileEventReader.getCandidateFiles` and `getNextFile`.
//!
//! A candidate is a file whose name does not start with `.`, does not end with
//! `fileSuffix`, matches `includePattern` and not `ignorePattern` (whole-name matches, as
//! Java's `matches()`), and, with `trackingPolicy = tracker_dir`, has no marker in the
//! tracker directory. With `recursiveDirectorySearch` subdirectories are walked too, except
//! hidden ones, those whose name matches `ignorePattern`, and the tracker directory.
//! `oldest` and `youngest` order by modification time in milliseconds, ties by file name
//! (Flume's order); `random` shuffles.
//!
//! Unlike Flume, which lists the whole directory again before each file, a listing is
//! read in its order until it is used up: a file that arrives meanwhile waits for the next
//! listing even when it is older (Flume's per-file listing is quadratic in the files
//! waiting).

use regex::Regex;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Oldest,
    Youngest,
    Random,
}

/// What decides whether a file is a candidate.
#[derive(Debug, Clone)]
pub struct Filter {
    pub dir: PathBuf,
    pub include: Regex,
    pub ignore: Regex,
    pub suffix: String,
    pub recursive: bool,
    /// The tracker directory, and whether finished files are recorded in it.
    pub tracker_dir: PathBuf,
    pub tracker_markers: bool,
}

/// A whole-string match, as Java's `Pattern.matcher(s).matches()`.
pub fn whole(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

impl Filter {
    fn file_wanted(&self, path: &Path, name: &str) -> bool {
        let marked =
            || super::tracker::marker(path, &self.dir, &self.tracker_dir, &self.suffix).exists();
        !name.starts_with('.')
            && !name.ends_with(&self.suffix)
            && self.include.is_match(name)
            && !self.ignore.is_match(name)
            && (!self.tracker_markers || !marked())
    }

    /// The candidate files with their modification times (ms), in directory order;
    /// errors (a directory that vanished) are logged by the caller and skipped.
    pub fn list(&self, errors: &mut Vec<String>) -> Vec<(PathBuf, i64)> {
        let mut out = Vec::new();
        self.walk(&self.dir.clone(), &mut out, errors);
        out
    }

    fn walk(&self, dir: &Path, out: &mut Vec<(PathBuf, i64)>, errors: &mut Vec<String>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                errors.push(format!("listing {}: {e}", dir.display()));
                return;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if self.recursive
                    && !name.starts_with('.')
                    && !self.ignore.is_match(&name)
                    && path != self.tracker_dir
                {
                    self.walk(&path, out, errors);
                }
            } else if meta.is_file() && self.file_wanted(&path, &name) {
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as i64);
                out.push((path, mtime));
            }
        }
    }
}

/// Sorts a listing into the order its files are read.
pub fn order(files: &mut [(PathBuf, i64)], order: Order, seed: &mut u64) {
    let name = |p: &PathBuf| p.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    match order {
        Order::Oldest => {
            files.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| name(&a.0).cmp(&name(&b.0))))
        }
        Order::Youngest => {
            files.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| name(&a.0).cmp(&name(&b.0))))
        }
        Order::Random => {
            // Fisher-Yates with a xorshift: no cryptographic need.
            for i in (1..files.len()).rev() {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                files.swap(i, (*seed % (i as u64 + 1)) as usize);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(dir: &Path, include: &str, ignore: &str, recursive: bool, markers: bool) -> Filter {
        Filter {
            dir: dir.to_path_buf(),
            include: whole(include).unwrap(),
            ignore: whole(ignore).unwrap(),
            suffix: ".COMPLETED".into(),
            recursive,
            tracker_dir: dir.join(".flumespool"),
            tracker_markers: markers,
        }
    }

    fn names(mut l: Vec<(PathBuf, i64)>, dir: &Path) -> Vec<String> {
        l.sort();
        l.iter()
            .map(|(p, _)| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn candidates_skip_hidden_done_ignored_and_marked_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for f in [
            "a.log",
            "b.txt",
            ".hidden",
            "c.log.COMPLETED",
            "skip.log",
            "sub/d.log",
            ".dot/e.log",
            "ign/f.log",
            ".flumespool/g.log",
        ] {
            let path = p.join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        let mut errors = Vec::new();
        let f = filter(p, "^.*$", "^$", false, false);
        assert_eq!(
            names(f.list(&mut errors), p),
            ["a.log", "b.txt", "skip.log"]
        );
        let f = filter(p, ".*\\.log", "skip.*|ign", true, false);
        assert_eq!(names(f.list(&mut errors), p), ["a.log", "sub/d.log"]);
        // Include is a whole-name match, as Java's matches().
        let f = filter(p, "log", "^$", false, false);
        assert!(f.list(&mut errors).is_empty());
        std::fs::write(p.join(".flumespool/a.log.COMPLETED"), "").unwrap();
        std::fs::create_dir_all(p.join(".flumespool/sub")).unwrap();
        std::fs::write(p.join(".flumespool/sub/d.log.COMPLETED"), "").unwrap();
        let f = filter(p, ".*\\.log", "^$", true, true);
        assert_eq!(names(f.list(&mut errors), p), ["ign/f.log", "skip.log"]);
        assert!(errors.is_empty());
    }

    #[test]
    fn oldest_and_youngest_order_by_mtime_then_name() {
        let mut files: Vec<(PathBuf, i64)> = vec![
            ("/s/b".into(), 5),
            ("/s/z/a".into(), 5),
            ("/s/c".into(), 1),
            ("/s/d".into(), 9),
        ];
        let mut seed = 1;
        order(&mut files, Order::Oldest, &mut seed);
        let got: Vec<_> = files.iter().map(|f| f.0.to_str().unwrap()).collect();
        assert_eq!(got, ["/s/c", "/s/z/a", "/s/b", "/s/d"]);
        order(&mut files, Order::Youngest, &mut seed);
        let got: Vec<_> = files.iter().map(|f| f.0.to_str().unwrap()).collect();
        assert_eq!(got, ["/s/d", "/s/z/a", "/s/b", "/s/c"]);
        order(&mut files, Order::Random, &mut seed);
        assert_eq!(files.len(), 4);
    }
}
