//! Shared helpers: a temporary MANTA_HOME, unsigned test JWTs, running the CLI in-process
//! and running the real binary.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use manta_config::Env;
use manta_node::cli::{Io, run};

/// A JWT-shaped token (unsigned: only the manager verifies signatures) with `exp` at
/// `exp` unix seconds.
pub(crate) fn jwt(exp: u64) -> String {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        b.encode(format!(
            r#"{{"sub":"node-abc123","exp":{exp},"kind":"bootstrap"}}"#
        )),
        b.encode(b"signature-bytes")
    )
}

/// A token valid for a long time.
pub(crate) fn good_jwt() -> String {
    jwt(4_000_000_000)
}

/// A temporary MANTA_HOME with helpers.
pub(crate) struct Home {
    pub(crate) dir: tempfile::TempDir,
}

impl Home {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().join("manta")
    }

    pub(crate) fn node(&self, name: &str) -> PathBuf {
        self.root().join("nodes").join(format!("{name}.toml"))
    }

    /// Writes a node configuration with mode 0600.
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.node(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// The environment: MANTA_HOME, HOME and `vars`.
    pub(crate) fn env(&self, vars: &[(&str, &str)]) -> Env {
        let mut pairs: Vec<(String, String)> = vec![
            ("MANTA_HOME".into(), self.root().display().to_string()),
            ("HOME".into(), self.dir.path().display().to_string()),
        ];
        pairs.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Env::from_pairs(pairs)
    }
}

/// What a command printed and returned.
pub(crate) struct Output {
    pub(crate) code: u8,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `manta_node ARGS` in-process with `env` and `stdin`.
pub(crate) fn cli(env: &Env, args: &[&str], stdin: &str, interactive: bool) -> Output {
    let mut input = std::io::Cursor::new(stdin.as_bytes().to_vec());
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let argv: Vec<OsString> = std::iter::once("manta_node")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect();
    let code = {
        let mut io = Io {
            stdin: &mut input,
            interactive,
            stdout: &mut stdout,
            stderr: &mut stderr,
        };
        run(argv, env, &mut io)
    };
    Output {
        code,
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// Runs the real binary with a clean environment plus `vars`.
pub(crate) fn bin(home: &Home, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_manta_node"))
        .args(args)
        .env_clear()
        .env("MANTA_HOME", home.root())
        .env("HOME", home.dir.path())
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    Output {
        code: u8::try_from(out.status.code().unwrap_or(255)).unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

pub(crate) fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
