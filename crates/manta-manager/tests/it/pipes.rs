//! The real `manta-manager` binary with its output going to pipes and files: no ANSI
//! colours there, and a quiet exit when the reader of standard output has gone (`| head`).

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use crate::process::BIN;

/// Runs `manta-manager --data-dir D args` with standard output `stdout` and standard
/// error a pipe; returns the exit code and stderr.
fn run(args: &[&str], stdout: Stdio) -> (Option<i32>, String) {
    let data = tempfile::tempdir().unwrap();
    // Admin commands open an existing store; create one as a manager that ran once would.
    drop(manta_manager::store::SqliteStore::open(&data.path().join("manager.db")).unwrap());
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir")
        .arg(data.path())
        .args(args)
        .env_remove("MANTA_MANAGER_CONFIG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_standard_output_exits_quietly() {
    // A pipe whose reader is already closed: the first write fails with EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let (code, err) = run(&["user", "add", "alice"], writer.into());
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("manta-manager:"), "{err}");
}

#[test]
fn completions_print_a_script_and_exit_quietly_into_a_closed_pipe() {
    for shell in ["bash", "zsh", "fish"] {
        // No --data-dir and no store: completions describe the command line only.
        let out = Command::new(BIN)
            .args(["completions", shell])
            .env_remove("MANTA_MANAGER_CONFIG")
            .env_remove("MANTA_MANAGER_DATA_DIR")
            .current_dir(tempfile::tempdir().unwrap().path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let script = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(
            script.contains("manta-manager") && script.contains("node-token"),
            "{shell}: {script}"
        );
    }
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let (code, err) = run(&["completions", "bash"], writer.into());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err, "");
}

#[test]
fn logs_to_a_file_have_no_colours() {
    for no_color in [None, Some("1")] {
        let data = tempfile::tempdir().unwrap();
        let log_path = data.path().join("stderr.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir")
            .arg(data.path().join("data"))
            .args([
                "serve",
                "--user-listen",
                "127.0.0.1:0",
                "--node-listen",
                "127.0.0.1:0",
            ])
            .env_remove("MANTA_MANAGER_CONFIG")
            .env_remove("NO_COLOR")
            .env("MANTA_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let mut child = cmd.spawn().unwrap();
        // Both ports printed means start-up (and its log lines) is done.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while let Some(Ok(line)) = lines.next() {
            if line.starts_with("node api listening on ") {
                break;
            }
        }
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(child.wait().unwrap().success());
        let err = std::fs::read_to_string(&log_path).unwrap();
        assert!(err.contains("INFO"), "no log lines: {err}");
        assert!(!err.contains('\u{1b}'), "colour in a file: {err:?}");
    }
}
