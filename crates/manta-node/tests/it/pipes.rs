//! `manta_node ... | head`: the reader closes the pipe early, and the binary exits quietly.

use std::process::{Command, Stdio};

#[test]
fn output_into_a_closed_pipe_exits_quietly() {
    for args in [
        &["version"][..],
        &["config", "list"][..],
        &["config", "list", "--json"][..],
        &["completions", "bash"][..],
    ] {
        // A pipe whose reader is already closed: the first write fails with EPIPE, as after
        // `| head` has read its lines.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let home = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_manta_node"))
            .args(args)
            .env("MANTA_HOME", home.path())
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}");
    }
}

#[test]
fn completions_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let home = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_manta_node"))
            .args(["completions", shell])
            .env("MANTA_HOME", home.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let script = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(
            script.contains("manta_node") && script.contains("validate"),
            "{shell}: {script}"
        );
        // Generating completions creates nothing in MANTA_HOME.
        assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 0);
    }
}
