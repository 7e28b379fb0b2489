//! The docs a user reads stay true to the code: the generated key pages match the registry,
//! README's table of types lists exactly the registered types, every relative link points
//! at a file (and heading) that exists, and README and BENCHMARKS.md keep their size bounds.

use flume_fast::config::render;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn generated_key_pages_match_the_registry() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_flume-fast"))
        .args(["describe", "--markdown", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let mut stale = Vec::new();
    for page in render::PAGES {
        let fresh = read(&out.path().join(page.file));
        let committed = std::fs::read_to_string(root().join("docs").join(page.file));
        if committed.ok().as_deref() != Some(fresh.as_str()) {
            stale.push(page.file);
        }
    }
    assert!(
        stale.is_empty(),
        "docs/{} differ from the key tables in the code; regenerate them with `{}`",
        stale.join(", docs/"),
        render::REGENERATE
    );
}

#[test]
fn markdown_page_lists_every_type_and_key_of_its_families() {
    for page in render::PAGES {
        let text = render::markdown(page);
        for (family, _) in page.families {
            let (_, types) = render::families()
                .into_iter()
                .find(|(f, _)| f == family)
                .unwrap();
            for t in types {
                assert!(
                    text.contains(&format!("# {}\n", t.name())),
                    "{}: no section for {family} {}",
                    page.file,
                    t.name()
                );
                assert!(text.contains(&format!("`{}`", t.class)), "{}", t.class);
                for k in t.keys {
                    assert!(
                        text.contains(&format!("| `{}` |", k.key)),
                        "{}: {family} {} key {} missing",
                        page.file,
                        t.name(),
                        k.key
                    );
                }
            }
        }
    }
    let covered: BTreeSet<&str> = render::PAGES
        .iter()
        .flat_map(|p| p.families.iter().map(|(f, _)| *f))
        .collect();
    let all: BTreeSet<&str> = render::families().iter().map(|(f, _)| *f).collect();
    assert_eq!(covered, all, "every family has a page");
}

/// README's "What is supported" table: kind → the backquoted type names of its row.
fn readme_types(readme: &str) -> Vec<(String, BTreeSet<String>)> {
    let section = readme
        .split("## What is supported")
        .nth(1)
        .expect("README has a 'What is supported' section");
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let names = cells[2]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
            (cells[1].to_string(), names)
        })
        .collect()
}

#[test]
fn readme_table_lists_exactly_the_registered_types() {
    let readme = read(&root().join("README.md"));
    let rows = readme_types(&readme);
    let families = render::families();
    assert_eq!(
        rows.len(),
        families.len(),
        "one README row per family: {rows:?}"
    );
    for (family, types) in families {
        let kind = format!("{family}s");
        let Some((_, listed)) = rows.iter().find(|(k, _)| *k == kind) else {
            panic!("README's table has no row '{kind}'");
        };
        let registered: BTreeSet<String> = types.iter().map(|t| t.name().to_string()).collect();
        let missing: Vec<_> = registered.difference(listed).collect();
        let unknown: Vec<_> = listed.difference(&registered).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "README's {kind} row: registered but not listed {missing:?}, listed but not registered {unknown:?}"
        );
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// The targets of inline links `[text](target)` that are not URLs.
fn relative_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = &rest[..end];
        if !target.contains("://") && !target.starts_with("mailto:") {
            out.push(target.to_string());
        }
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let mut files = vec![root().join("README.md"), root().join("BENCHMARKS.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = read(file);
        for link in relative_links(&text) {
            checked += 1;
            let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !target.exists() {
                broken.push(format!("{}: {link}: no such file", file.display()));
                continue;
            }
            if !anchor.is_empty() && !anchors(&read(&target)).contains(anchor) {
                broken.push(format!("{}: {link}: no such heading", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        checked > 20,
        "only {checked} links found: is the parser broken?"
    );
}

#[test]
fn readme_links_into_every_docs_page() {
    let readme = read(&root().join("README.md"));
    let linked: BTreeSet<String> = relative_links(&readme)
        .into_iter()
        .filter_map(|l| {
            l.split('#')
                .next()
                .and_then(|p| p.strip_prefix("docs/"))
                .map(str::to_string)
        })
        .collect();
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(linked.contains(&name), "README does not link docs/{name}");
    }
}

#[test]
fn readme_and_benchmarks_keep_their_size_bounds() {
    let readme = std::fs::metadata(root().join("README.md")).unwrap().len();
    assert!(
        readme <= 8 * 1024,
        "README.md is {readme} bytes (at most 8 KiB)"
    );
    let bench = std::fs::metadata(root().join("BENCHMARKS.md"))
        .unwrap()
        .len();
    assert!(
        bench <= 40 * 1024,
        "BENCHMARKS.md is {bench} bytes (at most 40 KiB)"
    );
    let readme = read(&root().join("README.md"));
    // The title, a blank line, the code fence, then the two commands.
    let start: Vec<&str> = readme.lines().skip(3).take(2).collect();
    assert!(
        start[0].contains("conf/flume-fast.conf") && start[1].starts_with("scripts/test"),
        "README starts with the two commands: {start:?}"
    );
}

#[test]
fn describe_markdown_prints_one_page_or_refuses_an_unknown_one() {
    let bin = env!("CARGO_BIN_EXE_flume-fast");
    let out = Command::new(bin)
        .args(["describe", "--markdown", "sinks"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let sinks = render::PAGES.iter().find(|p| p.file == "sinks.md").unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        render::markdown(sinks)
    );
    let out = Command::new(bin)
        .args(["describe", "--markdown", "nosuch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("no page 'nosuch' (pages: sources, channels, sinks, flow)"),
        "{err}"
    );
}
