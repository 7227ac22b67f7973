//! The documentation cannot drift from the code:
//! - `docs/reference/config.md` names every key of the config file types, and no other key;
//!   the key list is read from the types themselves, through the "expected one of" message
//!   that serde gives for an unknown field of a `deny_unknown_fields` struct;
//! - the reference config `conf/verigate.yaml` mentions every key too;
//! - every relative link in README.md and docs/**/*.md resolves (file, and `#anchor` in a
//!   Markdown file), and every `src/`, `conf/`, `deploy/` and `benches/` path the docs name
//!   exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use verigate::config::file::FileConfig;

const PROBE: &str = "__verigate_docs_probe__";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One step of a key path: a struct field, a list element (`[]`) or a map value (`<name>`).
#[derive(Clone)]
enum Step {
    Field(String),
    Item,
    Entry,
}

/// The YAML document that puts `leaf` at `path` (every other key left out: serde reports an
/// unknown field as soon as it meets it, before any missing required field).
fn nest(path: &[Step], leaf: serde_yaml::Value) -> serde_yaml::Value {
    path.iter().rev().fold(leaf, |inner, step| {
        let key = match step {
            Step::Item => return serde_yaml::Value::Sequence(vec![inner]),
            Step::Field(name) => name.as_str(),
            Step::Entry => "some_name",
        };
        let mut m = serde_yaml::Mapping::new();
        m.insert(key.into(), inner);
        serde_yaml::Value::Mapping(m)
    })
}

/// The fields of the struct at `path`, if what sits there is a struct that denies unknown keys:
/// parsed from serde's "unknown field `PROBE`, expected one of `a`, `b`" message (also
/// "expected `a` or `b`" and "expected `a`" for structs of two or one field).
fn fields_at(path: &[Step]) -> Option<Vec<String>> {
    let mut probe = serde_yaml::Mapping::new();
    probe.insert(PROBE.into(), 0.into());
    let doc = nest(path, serde_yaml::Value::Mapping(probe));
    let text = serde_yaml::to_string(&doc).expect("a YAML value serialises");
    let err = serde_yaml::from_str::<FileConfig>(&text).err()?.to_string();
    let marker = format!("unknown field `{PROBE}`");
    let rest = &err[err.find(&marker)? + marker.len()..];
    let list = rest
        .strip_prefix(", expected one of ")
        .or_else(|| rest.strip_prefix(", expected "))?;
    // `a`, `b`, `c` (then serde_yaml's " at line ..." position).
    let mut names = Vec::new();
    let mut parts = list.split('`');
    parts.next();
    while let Some(name) = parts.next() {
        names.push(name.to_string());
        match parts.next() {
            Some(", ") | Some(" or ") => continue,
            _ => break,
        }
    }
    assert!(!names.is_empty(), "no field names in {err:?}");
    Some(names)
}

fn show(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(f);
            }
            Step::Item => s.push_str("[]"),
            Step::Entry => s.push_str(".<name>"),
        }
    }
    s
}

/// Every key path of the config file types: `session.ttl`, `routes[].require.commit_on`,
/// `upstreams.<name>.addrs`, ... (sections included: `session`, `routes[].require`).
fn config_keys() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo: Vec<Vec<Step>> = vec![vec![]];
    while let Some(path) = todo.pop() {
        let fields = fields_at(&path).unwrap_or_else(|| panic!("no struct at `{}`", show(&path)));
        for f in fields {
            let mut here = path.clone();
            here.push(Step::Field(f));
            out.insert(show(&here));
            // A struct, a list of structs or a map of structs below this key?
            for tail in [vec![], vec![Step::Item], vec![Step::Entry]] {
                let mut deeper = here.clone();
                deeper.extend(tail);
                if fields_at(&deeper).is_some() {
                    todo.push(deeper);
                    break;
                }
            }
        }
    }
    out
}

/// The key paths the reference page documents: every backticked key path in the first cell of
/// a table row (`| `a.b`, `a.c` | ...`).
fn documented_keys(page: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in page.lines() {
        let Some(row) = line.strip_prefix('|') else {
            continue;
        };
        let first = row.split('|').next().unwrap_or("");
        for (i, part) in first.split('`').enumerate() {
            let is_key = !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.[]<>".contains(c));
            if i % 2 == 1 && is_key {
                out.insert(part.to_string());
            }
        }
    }
    out
}

#[test]
fn the_key_walk_finds_the_nested_types() {
    // The walk itself: keys of every kind of nesting are found, so an empty or shallow result
    // cannot pass the comparison below by accident.
    let keys = config_keys();
    for k in [
        "listen",
        "session.keys_env",
        "tls.http2",
        "upstreams.<name>.addrs",
        "routes[].match.host",
        "routes[].require.keep_request.max_body",
        "providers.portone.channel_key",
        "identity_headers.assertion.previous_key_files",
    ] {
        assert!(keys.contains(k), "{k} not found in {keys:?}");
    }
    assert!(keys.len() > 100, "{}", keys.len());
}

#[test]
fn config_reference_names_every_key_and_no_other() {
    let keys = config_keys();
    let page = read("docs/reference/config.md");
    let documented = documented_keys(&page);
    let missing: Vec<_> = keys.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&keys).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/reference/config.md: keys of the config types it does not document: {missing:?}; \
         keys it documents that the config types do not have: {unknown:?}"
    );
}

#[test]
fn reference_config_mentions_every_key() {
    // conf/verigate.yaml is the commented reference config: every key is set or shown in a
    // comment (`# key: value`) under its section.
    let yaml = read("conf/verigate.yaml");
    let said: BTreeSet<&str> = yaml
        .lines()
        .map(|l| l.trim_start().trim_start_matches('#').trim_start())
        .map(|l| {
            l.trim_start_matches("- ")
                .trim_start_matches('{')
                .trim_start()
        })
        .filter_map(|l| l.split(':').next())
        .collect();
    let flow: String = yaml.clone();
    let missing: Vec<String> = config_keys()
        .into_iter()
        .filter(|k| {
            let last = k.rsplit('.').next().unwrap_or(k).trim_end_matches("[]");
            last != "<name>"
                && !said.contains(last)
                && !flow.contains(&format!("{last}:"))
                && !flow.contains(&format!("{{ {last}:"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "conf/verigate.yaml never shows these keys: {missing:?}"
    );
    // And it is a valid config (the secrets it names are not needed to parse it).
    serde_yaml::from_str::<FileConfig>(&yaml).expect("conf/verigate.yaml parses");
}

fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = vec![root().join("README.md")];
    walk(&root().join("docs"), &mut out);
    out.sort();
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(md: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in md.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if !fenced && line.starts_with('#') {
            let text = line.trim_start_matches('#');
            let text = text.replace('`', "");
            let mut a = anchor(&text);
            let mut n = 1;
            while out.contains(&a) {
                a = format!("{}-{n}", anchor(&text));
                n += 1;
            }
            out.insert(a);
        }
    }
    out
}

/// `[text](target)` links outside code blocks.
fn links(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in md.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let files = markdown_files();
    assert!(files.len() > 10, "{files:?}");
    let mut broken = Vec::new();
    for file in &files {
        let md = std::fs::read_to_string(file).expect("readable");
        let name = file
            .strip_prefix(root())
            .unwrap_or(file)
            .display()
            .to_string();
        for link in links(&md) {
            let link = link.split_whitespace().next().unwrap_or("").to_string();
            if link.contains("://") || link.starts_with("mailto:") || link.is_empty() {
                continue;
            }
            let (path, frag) = match link.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap_or(&root()).join(path)
            };
            if !target.exists() {
                broken.push(format!("{name}: {link} (no such file)"));
                continue;
            }
            if let Some(frag) = frag {
                if target.extension().is_some_and(|x| x == "md") {
                    let text = std::fs::read_to_string(&target).unwrap_or_default();
                    if !anchors(&text).contains(frag) {
                        broken.push(format!("{name}: {link} (no such heading)"));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_repository_path_named_in_the_docs_exists() {
    let mut missing = Vec::new();
    let mut seen = 0;
    for file in markdown_files() {
        let md = std::fs::read_to_string(&file).expect("readable");
        let name = file
            .strip_prefix(root())
            .unwrap_or(&file)
            .display()
            .to_string();
        // Prose only: a code block may name a file its commands create.
        let mut fenced = false;
        let prose: Vec<&str> = md
            .lines()
            .filter(|l| {
                if l.starts_with("```") {
                    fenced = !fenced;
                    return false;
                }
                !fenced
            })
            .collect();
        let prose = prose.join("\n");
        for w in prose.split(|c: char| "`()[] ,;:'\"\n".contains(c)) {
            // A repository path at the start of a word: source, configs, deployment files and
            // benchmarks (test files move when the test binaries are merged; not checked).
            if !["src/", "conf/", "deploy/", "benches/"]
                .iter()
                .any(|p| w.starts_with(p))
            {
                continue;
            }
            let p = w.trim_end_matches(['.', '*']);
            if p.contains('<') || p.contains('{') {
                continue; // a pattern (`src/providers/<name>/`), not a path
            }
            seen += 1;
            if !root().join(p).exists() {
                missing.push(format!("{name}: {p}"));
            }
        }
    }
    assert!(seen > 5, "the docs name only {seen} repository paths");
    assert!(missing.is_empty(), "no such path:\n{}", missing.join("\n"));
}

#[test]
fn every_metric_is_documented() {
    // The names registered in src/metrics.rs, each in a row of the metrics reference.
    let src = read("src/metrics.rs");
    let page = read("docs/reference/metrics.md");
    let names: BTreeSet<&str> = src
        .split('"')
        .filter(|s| {
            s.starts_with("verigate_") && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
        .collect();
    assert!(names.len() > 15, "{names:?}");
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !page.contains(&format!("| `{n}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/reference/metrics.md misses {missing:?}"
    );
}
