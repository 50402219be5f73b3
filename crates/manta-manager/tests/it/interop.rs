//! The published Python SDK (`pip install --pre mantatech-sdk`) against our manager.
//!
//! The virtualenv is created once under the target directory and reused. Without python3,
//! pip or network the test prints why and passes as skipped, except in CI (`CI=true`), where
//! it fails instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{Served, admin};

/// Python run before every SDK script: quiet warnings, `UserAPI`, and `status_of(call)`, which
/// returns the gRPC status name and message a call fails with ("OK", "" when it succeeds).
const PRELUDE: &str = r#"
import sys, warnings
warnings.simplefilter("ignore")
from manta import UserAPI

def status_of(call):
    try:
        call()
    except Exception as e:
        code = getattr(e, "status_code", None)
        return getattr(code, "name", str(code)), str(e)
    return "OK", ""
"#;

const SCRIPT: &str = r#"
import base64, json
from manta.apis.async_user_api import AsyncUserAPI
from manta_common.event_loop import EventLoopManager

host, port, token, username, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]

api = UserAPI(token=token, host=host, port=port)
assert api.is_available() is True, "is_available() should be True"
user = api.get_user()
assert user.username == username, user
perms = [int(p) for p in user.authorization.permissions]
assert 1 in perms, f"USER_READ (1) expected in {perms}"
assert 4 not in perms, f"USER_LIST (4) unexpected in {perms}"

code, text = status_of(api.list_user_ids)
assert code == "PERMISSION_DENIED", (code, text)
assert "user:list" in text, text

head, payload, sig = token.split(".")
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
claims["scope"] = "admin:*"
forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
code, text = status_of(UserAPI(token=f"{head}.{forged}.{sig}", host=host, port=port).get_user)
assert code == "UNAUTHENTICATED", (code, text)

signed = EventLoopManager.get_instance().run_coroutine(
    AsyncUserAPI.sign_in(username, password, host=host, port=port))
first = signed.token
session = UserAPI(token=first, host=host, port=port)
# The manager's access tokens live 120 s here, under the SDK's 300 s threshold: the SDK
# calls RefreshUserToken before GetUser and continues with the new token.
assert session.get_user().username == username
refreshed = session.async_api.token
assert refreshed != first, "the SDK should have refreshed the token"

message = session.logout()
assert isinstance(message, str) and message, message
for t in (first, refreshed):
    code, text = status_of(UserAPI(token=t, host=host, port=port, auto_refresh=False).get_user)
    assert code == "UNAUTHENTICATED", (code, text)
print("interop ok")
"#;

fn venv_dir() -> PathBuf {
    // target/debug/deps/<test binary> -> target/
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .map(|t| t.join("interop-venv"))
        .unwrap_or_else(|| PathBuf::from("target/interop-venv"))
}

/// Returns the venv's python, creating the venv when needed; Err(reason) when impossible.
pub(crate) fn sdk_python() -> Result<PathBuf, String> {
    // Several tests of this binary use the venv and run in parallel: only one may create it,
    // or two `pip install` runs corrupt each other on a fresh machine.
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = CREATING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let venv = venv_dir();
    let python = venv.join("bin/python");
    let has_sdk = |py: &Path| {
        Command::new(py)
            .args(["-c", "import manta, manta_common"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if python.exists() && has_sdk(&python) {
        return Ok(python);
    }
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .map_err(|e| format!("python3 is not available: {e}"))?;
    if !created.status.success() {
        return Err(format!(
            "cannot create a virtualenv: {}",
            String::from_utf8_lossy(&created.stderr)
        ));
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--pre", "mantatech-sdk"])
        .output()
        .map_err(|e| format!("pip is not available: {e}"))?;
    if !pip.status.success() {
        return Err(format!(
            "pip install --pre mantatech-sdk failed (no network?): {}",
            String::from_utf8_lossy(&pip.stderr)
        ));
    }
    if has_sdk(&python) {
        Ok(python)
    } else {
        Err("mantatech-sdk installed but cannot be imported".into())
    }
}

/// The SDK's python for the test `name`, or None when the SDK cannot be set up here: the test
/// then prints why and passes as skipped, except in CI (`CI=true`), where it fails.
pub(crate) fn sdk_python_or_skip(name: &str) -> Option<PathBuf> {
    match sdk_python() {
        Ok(p) => Some(p),
        Err(reason) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the SDK interop test cannot run in CI: {reason}"
            );
            eprintln!("SKIPPED {name}: {reason}");
            None
        }
    }
}

/// Runs `script` after [`PRELUDE`] with `args` (the manager's user API host and port first)
/// and asserts it exits cleanly having printed `done`.
pub(crate) fn run_sdk_script(
    python: &Path,
    served: &Served,
    script: &str,
    args: &[&str],
    done: &str,
) {
    let out = Command::new(python)
        .arg("-c")
        .arg(format!("{PRELUDE}{script}"))
        .arg(served.user_addr.ip().to_string())
        .arg(served.user_addr.port().to_string())
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(done),
        "SDK script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
fn published_python_sdk_works_against_our_manager() {
    let Some(python) = sdk_python_or_skip("published_python_sdk_works_against_our_manager") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("manager.toml");
    std::fs::write(&config, "[tokens]\naccess_ttl_secs = 120\n").unwrap();
    admin(
        &data,
        Some(&config),
        &[
            "user",
            "add",
            "alice",
            "--scopes",
            "user:read",
            "--password-stdin",
        ],
        "correct horse\n",
    );
    let token = admin(
        &data,
        Some(&config),
        &["token", "issue", "--user", "alice", "--ttl", "1h"],
        "",
    );
    let served = Served::start(&data, Some(&config), &[]);
    run_sdk_script(
        &python,
        &served,
        SCRIPT,
        &[token.trim(), "alice", "correct horse"],
        "interop ok",
    );
    served.terminate();
    let audit = admin(
        &data,
        Some(&config),
        &["audit", "--method", "RefreshUserToken"],
        "",
    );
    assert!(
        audit.contains("ALLOW"),
        "the SDK refreshed through RefreshUserToken: {audit}"
    );
}
