//! Names the git commit a binary is built from, for `verigate --version` and the
//! `verigate_build_info` metric (env `VERIGATE_COMMIT`).
//!
//! From a git checkout: `git rev-parse HEAD`, re-run when HEAD or the branch it points to moves.
//! From a tarball (no `.git`, or no `git`): `VERIGATE_BUILD_COMMIT` when the packager sets it,
//! else `unknown`. Never fails the build.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn watch(git_path: &str) {
    if let Some(p) = git(&["rev-parse", "--git-path", git_path]) {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(p);
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=VERIGATE_BUILD_COMMIT");
    let from_git = git(&["rev-parse", "--short=12", "HEAD"]);
    if from_git.is_some() {
        watch("HEAD");
        watch("packed-refs");
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch(&branch);
        }
    }
    let commit = from_git
        .or_else(|| {
            std::env::var("VERIGATE_BUILD_COMMIT")
                .ok()
                .filter(|c| !c.trim().is_empty() && c.chars().all(|c| c.is_ascii_alphanumeric()))
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=VERIGATE_COMMIT={commit}");
}
