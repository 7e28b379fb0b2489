//! Every configuration shipped under conf/ is valid, as `flume-fast check` sees it.

mod common;

#[test]
fn every_shipped_config_checks_clean() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut files = Vec::new();
    for dir in [root.clone(), root.join("examples")] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "conf") {
                files.push(e.path());
            }
        }
    }
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let (code, out, err) = common::run(&["check", f.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {err}", f.display());
        assert!(out.contains("configuration is valid"), "{}", f.display());
        assert!(!err.contains("warning"), "{}: {err}", f.display());
    }
}
