//! `manta ... | head`: the reader closes the pipe early, and `manta` exits quietly.

use std::process::{Command, Stdio};

/// Runs `manta args` with standard output a pipe whose reader is already closed, so the
/// first write fails with EPIPE, as after `| head` has read its lines.
fn run_into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_manta"))
        .args(args)
        .env("MANTA_HOME", home.path())
        .env_remove("MANTA_TOKEN")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completions_into_a_closed_pipe_exit_quietly() {
    let (code, err) = run_into_closed_pipe(&["completions", "bash"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err, "");
}

#[test]
fn help_into_a_closed_pipe_exits_quietly() {
    let (code, err) = run_into_closed_pipe(&["--help"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err, "");
}
