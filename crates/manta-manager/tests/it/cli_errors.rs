//! Error texts of the real `manta-manager` admin commands that a typing mistake causes.

use std::process::{Command, Stdio};

use crate::process::BIN;

#[test]
fn a_scope_split_by_a_space_is_refused_with_the_scope_meant() {
    let data = tempfile::tempdir().unwrap();
    // Admin commands open an existing store; create one as a manager that ran once would.
    drop(manta_manager::store::SqliteStore::open(&data.path().join("manager.db")).unwrap());
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data.path())
        .args(["user", "add", "ops", "--scopes", "cluster read"])
        .env_remove("MANTA_MANAGER_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "manta-manager: invalid scopes: scope `cluster` has no `:` and grants nothing useful; did you mean `cluster:read`?\n"
    );
    // Nothing was created: the user can be added with the right scope.
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data.path())
        .args(["user", "add", "ops", "--scopes", "cluster:read"])
        .env_remove("MANTA_MANAGER_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
