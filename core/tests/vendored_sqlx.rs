//! `vendor/sqlx-core` is sqlx-core 0.9.0 as published on crates.io plus
//! `vendor/sqlx-core.patch`, and nothing else: with the patch taken back out, every file has
//! the SHA-256 that `vendor/sqlx-core-0.9.0.sha256` records for the published crate (whose
//! `.crate` file has the checksum crates.io's index lists; see `vendor/README.md`).

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn vendor() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vendor")
}

/// Copies the folder `from` into `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a folder");
    for entry in std::fs::read_dir(from).expect("read a folder") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// Every file below `root`, by its path relative to it, with its SHA-256.
fn hashes(root: &Path, below: &Path, into: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(below).expect("read a folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            hashes(root, &path, into);
        } else {
            let relative = path
                .strip_prefix(root)
                .expect("below the root")
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&path).expect("read a file");
            into.insert(relative, hex::encode(Sha256::digest(&bytes)));
        }
    }
}

#[test]
fn the_vendored_sqlx_core_is_upstream_0_9_0_plus_the_patch() {
    let work = std::env::temp_dir().join(format!("bichito-vendored-sqlx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    copy_tree(&vendor().join("sqlx-core"), &work);
    let reverted = Command::new("git")
        .args(["apply", "--reverse", "-p1"])
        .arg(vendor().join("sqlx-core.patch"))
        .current_dir(&work)
        .output()
        .expect("git runs");
    assert!(
        reverted.status.success(),
        "the patch must take back out cleanly: {}",
        String::from_utf8_lossy(&reverted.stderr)
    );
    let mut found = BTreeMap::new();
    hashes(&work, &work, &mut found);
    let _ = std::fs::remove_dir_all(&work);

    let manifest = std::fs::read_to_string(vendor().join("sqlx-core-0.9.0.sha256"))
        .expect("the upstream manifest");
    let upstream: BTreeMap<String, String> = manifest
        .lines()
        .filter_map(|line| line.split_once("  "))
        .map(|(hash, path)| (path.to_owned(), hash.to_owned()))
        .collect();
    assert_eq!(upstream.len(), manifest.lines().count(), "one file a line");
    let differing: BTreeSet<&String> = upstream
        .keys()
        .chain(found.keys())
        .filter(|path| upstream.get(*path) != found.get(*path))
        .collect();
    assert!(
        differing.is_empty(),
        "files that are not upstream 0.9.0 once the patch is out: {differing:?}"
    );
}
