//! `cargo xtask docs`: runs the console examples of the user docs against a real
//! `manta-manager dev` and compares what the programs print with what the docs show.
//!
//! A ```` ```console ```` block holds steps. A step is a line starting with `$ ` (a shell
//! command; lines ending in `\` continue it), then optionally `? N` (the exit status it must
//! give; 0 when absent), then the output it must print, stdout and stderr together. Output is
//! compared with snapbox's wildcards: `[..]` matches within a line, `...` on a line of its
//! own matches any number of lines. Blocks of other kinds (```` ```sh ````, plain ```` ``` ````)
//! are illustrations and are not run.
//!
//! Each file is one session, as a reader would type it: one `bash` runs its steps in order,
//! so a variable set in one step (`CLUSTER=$(...)`) is there in the next. The session has a
//! fresh home directory (shown as `/home/alice`), the three programs first on `PATH`, the
//! variable `PASSWORD` (alice's password), `NO_COLOR`, and a `manta-manager dev` already
//! running with its store in `./.manta-dev`. Its ports are chosen by the system; commands are
//! run with `50051`/`50052` replaced by them, output is shown with them replaced back, so
//! the docs show the default ports a reader sees.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::demo::{Bins, Lines, Proc};

/// The pages whose console examples run.
pub(crate) const PAGES: &[&str] = &["docs/guide.md", "docs/cli.md", "docs/node.md"];

/// The password `PASSWORD` holds in a session.
const PASSWORD: &str = "correct horse battery staple";

/// The home directory the docs show.
const SHOWN_HOME: &str = "/home/alice";

/// How long one page's session may take, all steps together.
const SESSION_TIMEOUT: Duration = Duration::from_secs(300);

/// One console step of a page.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// The 1-based line of its `$ `.
    pub(crate) line: usize,
    pub(crate) command: String,
    pub(crate) status: i32,
    pub(crate) expected: String,
}

/// The steps of every ```` ```console ```` block of `page`, in order.
pub(crate) fn steps(page: &str) -> Result<Vec<Step>, String> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    let mut in_other = false;
    let mut lines = page.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let n = i + 1;
        let fence = line.trim_start().starts_with("```");
        if in_other {
            in_other = !fence;
            continue;
        }
        if !in_console {
            if fence {
                let info = line.trim_start().trim_start_matches('`').trim();
                in_console = info == "console";
                in_other = !in_console;
            }
            continue;
        }
        if fence {
            in_console = false;
            continue;
        }
        if let Some(first) = line.strip_prefix("$ ") {
            let mut command = first.to_owned();
            while command.ends_with('\\') {
                match lines.next() {
                    Some((_, more)) if !more.trim_start().starts_with("```") => {
                        command.push('\n');
                        command.push_str(more);
                    }
                    _ => return Err(format!("line {n}: the command's last line ends in `\\`")),
                }
            }
            // A here-document's lines belong to the command, up to its delimiter.
            if let Some(word) = heredoc_delimiter(&command) {
                loop {
                    match lines.next() {
                        Some((_, more)) if more.trim_start().starts_with("```") => {
                            return Err(format!("line {n}: the here-document is not closed"));
                        }
                        Some((_, more)) => {
                            command.push('\n');
                            command.push_str(more);
                            if more.trim() == word {
                                break;
                            }
                        }
                        None => {
                            return Err(format!("line {n}: the here-document is not closed"));
                        }
                    }
                }
            }
            let mut status = 0;
            if let Some((_, next)) = lines.peek()
                && let Some(code) = next.strip_prefix("? ")
            {
                status = code
                    .trim()
                    .parse()
                    .map_err(|_| format!("line {}: `? {code}` is not an exit status", n + 1))?;
                lines.next();
            }
            steps.push(Step {
                line: n,
                command,
                status,
                expected: String::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.expected.push_str(line);
            step.expected.push('\n');
        } else {
            return Err(format!(
                "line {n}: a console block must start with a `$ ` command"
            ));
        }
    }
    if in_console {
        return Err("a console block is not closed".into());
    }
    Ok(steps)
}

/// The delimiter of a here-document the command opens (`<<EOF`, `<<'EOF'`, `<<-EOF`), if any;
/// a here-string (`<<<`) is not one.
fn heredoc_delimiter(command: &str) -> Option<String> {
    let at = command.find("<<")?;
    let rest = &command[at + 2..];
    if rest.starts_with('<') {
        return None;
    }
    let rest = rest.trim_start_matches('-').trim_start();
    let word: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

/// Replaces each whole number `from` in `text` (digits not part of a longer number) by `to`.
fn replace_number(text: &str, from: u16, to: u16) -> String {
    let (from, to) = (from.to_string(), to.to_string());
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        out.push_str(if *digits == from { &to } else { digits });
        digits.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// The ports of a running dev manager, and the real-to-shown replacements of a session.
struct Session {
    home: PathBuf,
    user_port: u16,
    node_port: u16,
}

impl Session {
    fn command(&self, shown: &str) -> String {
        let c = replace_number(shown, 50052, self.user_port);
        replace_number(&c, 50051, self.node_port)
    }

    fn shown(&self, actual: &str) -> String {
        let home = self.home.to_string_lossy();
        let text = actual.replace(home.as_ref(), SHOWN_HOME);
        let text = replace_number(&text, self.user_port, 50052);
        replace_number(&text, self.node_port, 50051)
    }
}

/// Field separator of the markers between the steps' outputs.
const MARK: char = '\u{1e}';

/// Runs `page`'s console examples; fails naming every step whose status or output differs.
pub(crate) fn check_page(bins: &Bins, root: &Path, page: &str) -> Result<usize> {
    let text =
        std::fs::read_to_string(root.join(page)).with_context(|| format!("reading {page}"))?;
    let steps = steps(&text).map_err(|e| anyhow::anyhow!("{page}: {e}"))?;
    if steps.is_empty() {
        return Ok(0);
    }
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("alice");
    std::fs::create_dir_all(&home)?;

    let mut dev = Command::new(&bins.manager);
    dev.current_dir(&home)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .env("NO_COLOR", "1")
        .args(["--data-dir", "./.manta-dev", "dev"])
        .args([
            "--user-listen",
            "127.0.0.1:0",
            "--node-listen",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = dev.spawn().context("starting manta-manager dev")?;
    let out = Lines::follow(child.stdout.take().context("dev's stdout")?);
    let _err = Lines::follow(child.stderr.take().context("dev's stderr")?);
    let _dev = Proc::new("manta-manager dev", child);
    let port = |needle: &str| -> Result<u16> {
        let line = out.wait_for(needle, Duration::from_secs(30))?;
        let addr = line.rsplit(' ').next().unwrap_or_default();
        addr.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("no port in {line:?}"))
    };
    let session = Session {
        user_port: port("user api listening on ")?,
        node_port: port("node api listening on ")?,
        home: home.clone(),
    };
    // The default profile of this session is the dev manager, as it is for a reader whose
    // manager listens on the default port.
    std::fs::create_dir_all(home.join(".manta"))?;
    std::fs::write(
        home.join(".manta/config.toml"),
        format!(
            "[profiles.default]\nhost = \"localhost\"\nport = {}\n",
            session.user_port
        ),
    )?;

    let mut script = String::new();
    for (n, step) in steps.iter().enumerate() {
        let _ = write!(
            script,
            "{}\nprintf '\\n{MARK}{n} %d{MARK}\\n' \"$?\"\n",
            session.command(&step.command)
        );
    }
    let script_path = dir.path().join("session.sh");
    std::fs::write(&script_path, script)?;
    let bin_dir = bins
        .manager
        .parent()
        .context("the programs' directory")?
        .to_path_buf();
    let mut run = Command::new("bash");
    run.arg("-c")
        .arg(format!("exec 2>&1; . {}", script_path.display()))
        .current_dir(&home)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .env("HOME", &home)
        .env("USER", "alice")
        .env("LANG", "C.UTF-8")
        .env("NO_COLOR", "1")
        .env("PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    // Its own process group, so that what a step left running in the background (an agent
    // started with `&`) is stopped with the session and never holds the output open.
    std::os::unix::process::CommandExt::process_group(&mut run, 0);
    let mut shell = run.spawn().context("running the session's shell")?;
    let pid = shell.id();
    let mut pipe = shell.stdout.take().context("the session's output")?;
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut pipe, &mut bytes);
        bytes
    });
    let deadline = std::time::Instant::now() + SESSION_TIMEOUT;
    let timed_out = loop {
        if shell.try_wait()?.is_some() {
            break false;
        }
        if std::time::Instant::now() >= deadline {
            break true;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
    let _ = shell.wait();
    let bytes = reader.join().unwrap_or_default();
    ensure!(
        !timed_out || !bytes.is_empty(),
        "{page}: the session printed nothing in {SESSION_TIMEOUT:?}"
    );
    let all = String::from_utf8_lossy(&bytes).into_owned();

    let mut failures = Vec::new();
    let mut rest = all.as_str();
    let assert = snapbox::Assert::new();
    for (n, step) in steps.iter().enumerate() {
        let Some(at) = rest.find(&format!("\n{MARK}{n} ")) else {
            failures.push(format!(
                "{page}:{}: `{}` never finished (the session ended or timed out); its output:\n{}",
                step.line,
                step.command,
                session.shown(rest)
            ));
            break;
        };
        let printed = &rest[..at];
        let after = &rest[at + 2 + n.to_string().len() + 1..];
        let end = after.find(MARK).context("a marker without its end")?;
        let status: i32 = after[..end].parse().context("a marker's status")?;
        rest = after[end + MARK.len_utf8()..]
            .strip_prefix('\n')
            .unwrap_or(&after[end + MARK.len_utf8()..]);
        let shown = session.shown(printed);
        if status != step.status {
            failures.push(format!(
                "{page}:{}: `{}` exited with {status}, the page says {}; it printed:\n{shown}",
                step.line, step.command, step.status
            ));
            continue;
        }
        let actual = snapbox::Data::text(shown.trim_end().to_owned() + "\n");
        let expected = snapbox::Data::text(step.expected.trim_end().to_owned() + "\n");
        if step.expected.trim().is_empty() && shown.trim().is_empty() {
            continue;
        }
        if let Err(e) = assert.try_eq(Some(&"the programs"), actual, expected) {
            failures.push(format!(
                "{page}:{}: `{}` printed something else than the page shows:\n{e}",
                step.line, step.command
            ));
        }
    }
    // Nothing of the password reaches a page, whatever the programs printed.
    ensure!(
        !all.contains(PASSWORD),
        "{page}: the session printed alice's password"
    );
    if !failures.is_empty() {
        bail!("{}", failures.join("\n\n"));
    }
    Ok(steps.len())
}

/// Runs `cargo xtask docs`: build, then every page.
pub(crate) fn run(root: &Path) -> Result<()> {
    let bins = crate::demo::build(root)?;
    check_all(&bins, root)
}

/// Every page of [`PAGES`]; fails with the differences of all of them.
pub(crate) fn check_all(bins: &Bins, root: &Path) -> Result<()> {
    let mut failures = Vec::new();
    for page in PAGES {
        match check_page(bins, root, page) {
            Ok(n) => println!("{page}: {n} console steps behave as shown"),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if !failures.is_empty() {
        bail!(
            "the docs and the programs disagree:\n\n{}",
            failures.join("\n\n")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_blocks_give_commands_statuses_and_output() {
        let page = "text\n```sh\n$ not run\n```\n```console\n$ manta whoami\nalice\n\n\
                    $ manta token revoke x \\\n    --json\n? 5\nerror: no token x\n```\n";
        let steps = steps(page).unwrap();
        assert_eq!(
            steps,
            vec![
                Step {
                    line: 6,
                    command: "manta whoami".into(),
                    status: 0,
                    expected: "alice\n\n".into(),
                },
                Step {
                    line: 9,
                    command: "manta token revoke x \\\n    --json".into(),
                    status: 5,
                    expected: "error: no token x\n".into(),
                },
            ]
        );
    }

    #[test]
    fn a_here_document_is_part_of_its_command() {
        let page =
            "```console\n$ cat > f.json <<'EOF'\n{\"a\": 1}\nEOF\n$ manta x <<< \"$P\"\nout\n```\n";
        let parsed = steps(page).unwrap();
        assert_eq!(parsed[0].command, "cat > f.json <<'EOF'\n{\"a\": 1}\nEOF");
        assert_eq!(parsed[0].expected, "");
        assert_eq!(parsed[1].command, "manta x <<< \"$P\"");
        assert_eq!(parsed[1].expected, "out\n");
        assert!(steps("```console\n$ cat <<EOF\nnever closed\n```\n").is_err());
    }

    #[test]
    fn malformed_console_blocks_are_refused() {
        assert!(
            steps("```console\noutput first\n```\n")
                .unwrap_err()
                .contains("line 2")
        );
        assert!(
            steps("```console\n$ a\n? x\n```\n")
                .unwrap_err()
                .contains("line 3")
        );
        assert!(steps("```console\n$ a \\\n```\n").is_err());
        assert!(steps("```console\n$ a\n").is_err());
    }

    #[test]
    fn ports_are_replaced_only_as_whole_numbers() {
        let s = Session {
            home: PathBuf::from("/tmp/x/alice"),
            user_port: 41234,
            node_port: 41235,
        };
        assert_eq!(
            s.command("manta --port 50052 && curl localhost:50051"),
            "manta --port 41234 && curl localhost:41235"
        );
        assert_eq!(
            s.shown("/tmp/x/alice/.manta at localhost:41234, id 412345, 41235"),
            "/home/alice/.manta at localhost:50052, id 412345, 50051"
        );
    }

    /// Every console example of the docs, against the real programs (a few seconds).
    #[test]
    fn the_docs_console_examples_behave_as_shown() {
        let root = crate::workspace_root();
        let bins = crate::demo::build(&root).unwrap();
        if let Err(e) = check_all(&bins, &root) {
            panic!("{e:#}");
        }
    }

    /// A page whose output, exit status or background job is wrong fails, naming each line;
    /// a job left running does not hold the session open.
    #[test]
    fn a_page_that_disagrees_with_the_programs_fails_naming_its_lines() {
        let bins = crate::demo::build(&crate::workspace_root()).unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("docs")).unwrap();
        let page = "# x\n\n```console\n$ sleep 600 &\n$ manta --version\nmanta 0.0.0-not-this\n\
                    $ manta whoami\n$ echo \"$PASSWORD\" | wc -c\n29\n$ manta --version\nmanta [..]\n```\n";
        std::fs::write(root.path().join("docs/x.md"), page).unwrap();
        let err = format!(
            "{:#}",
            check_page(&bins, root.path(), "docs/x.md").unwrap_err()
        );
        assert!(
            err.contains("docs/x.md:5: `manta --version` printed something else"),
            "{err}"
        );
        assert!(
            err.contains("docs/x.md:7: `manta whoami` exited with 3, the page says 0"),
            "{err}"
        );
        assert!(!err.contains(":8:") && !err.contains(":10:"), "{err}");
    }
}
