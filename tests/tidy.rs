//! Keeps `src/core/` pure (DESIGN.md, "Who may use whom"): no IO, clocks, threads, locks,
//! environment, global randomness, encoding crates or other modules of this crate.

use std::path::Path;

/// Tokens that must not appear in code (comments excluded) under src/core/, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("std::fs", "file IO belongs to storage"),
    ("std::net", "network IO belongs to transport"),
    ("std::io", "IO belongs to the runtime"),
    ("std::thread", "the core is single-threaded and driven from outside"),
    ("std::sync", "no locks or atomics: the runtime owns the core"),
    ("std::env", "configuration comes in through Options"),
    ("std::time", "time is a tick"),
    ("std::process", "no processes"),
    ("Instant", "time is a tick"),
    ("SystemTime", "time is a tick"),
    ("zmq", "transport"),
    ("bincode", "the wire codec lives in transport"),
    ("serde_json", "config"),
    ("rand::", "randomness is the seeded SplitMix64 from Options"),
    ("thread_rng", "global randomness"),
    ("crate::storage", "core must not use storage"),
    ("crate::transport", "core must not use transport"),
    ("crate::node", "core must not use node"),
    ("crate::config", "core must not use config"),
    ("crate::kv", "core must not use kv"),
    ("crate::client", "core must not use client"),
    ("println!", "stdout is IO; use log macros"),
    ("eprintln!", "stderr is IO; use log macros"),
    ("unsafe", "the core needs no unsafe code"),
];

/// Largest file size (lines) in the core: small files, one idea each (DESIGN.md style 7).
const CORE_FILE_LINES_MAX: usize = 600;

fn code_of(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

#[test]
fn core_uses_no_io_clocks_threads_or_global_randomness() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut violations = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("src/core exists") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let is_test_file = path.file_name().is_some_and(|n| n.to_string_lossy().ends_with("tests.rs"));
        if !is_test_file && text.lines().count() > CORE_FILE_LINES_MAX {
            violations.push(format!("{}: {} lines (max {CORE_FILE_LINES_MAX})", path.display(), text.lines().count()));
        }
        for (n, line) in text.lines().enumerate() {
            for (token, why) in FORBIDDEN {
                if code_of(line).contains(token) {
                    violations.push(format!("{}:{}: `{token}` ({why}): {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(files >= 5, "found only {files} files in {}", dir.display());
    assert!(violations.is_empty(), "src/core/ must stay pure:\n{}", violations.join("\n"));
}

#[test]
fn the_tidy_check_catches_a_forbidden_line() {
    // The scanner itself: a forbidden token in code is seen, in a comment it is not.
    assert!(code_of("let t = std::time::Instant::now(); // x").contains("Instant"));
    assert!(!code_of("// Instant is not allowed here").contains("Instant"));
}
