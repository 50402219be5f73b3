//! The opt-in audit trail (the seed's "Audit Logging"): one `tracing` event per operation
//! with its name, its arguments (secrets shown as `[REDACTED]`), its outcome and its
//! duration, under the target [`AUDIT_TARGET`], plus a file writer for them.
//!
//! ```no_run
//! // One line of setup gives the seed's `manta_api_audit.log`:
//! manta_client::audit::init_file("manta_api_audit.log")?;
//! # Ok::<(), manta_client::Error>(())
//! ```

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::error::{Error, Result};

/// The `tracing` target of audit events.
pub const AUDIT_TARGET: &str = "manta_audit";

/// Set by [`enable`] / [`init_file`]: audit every `UserApi`, not only those built with
/// `.audit(true)`.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Audits every `UserApi` of this process from now on (events go to whatever `tracing`
/// subscriber is installed; [`file_layer`] writes them to a file).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// A `tracing` layer that appends audit events (and nothing else) to `path`, one line
/// each, creating the file with mode 0600. Compose it with your own subscriber.
///
/// # Errors
/// [`Error::Io`] when the file cannot be opened.
pub fn file_layer<S>(path: impl AsRef<Path>) -> Result<impl Layer<S> + Send + Sync + 'static>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let path = path.as_ref();
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let file = options.open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(tracing_subscriber::fmt::layer()
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .with_target(false)
        .with_level(false)
        .with_filter(Targets::new().with_target(AUDIT_TARGET, tracing::Level::INFO)))
}

/// The one-line setup: installs a global subscriber writing audit events to `path` and
/// enables auditing for every `UserApi`.
///
/// # Errors
/// [`Error::Io`] when the file cannot be opened; [`Error::Setting`] when a global
/// subscriber is already installed (then add [`file_layer`] to it and call [`enable`]).
pub fn init_file(path: impl AsRef<Path>) -> Result<()> {
    let layer = file_layer(path)?;
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).map_err(
        |_| Error::Setting {
            message: "a global tracing subscriber is already set; add manta_client::audit::file_layer to it and call manta_client::audit::enable()".into(),
        },
    )?;
    enable();
    Ok(())
}

pub(crate) fn record(
    on: bool,
    operation: &str,
    args: &str,
    outcome: std::result::Result<(), &Error>,
    took: Duration,
) {
    record_text(
        on,
        operation,
        args,
        outcome.map_err(ToString::to_string),
        took,
    );
}

pub(crate) fn record_text(
    on: bool,
    operation: &str,
    args: &str,
    outcome: std::result::Result<(), String>,
    took: Duration,
) {
    if !(on || ENABLED.load(Ordering::Relaxed)) {
        return;
    }
    let duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(()) => tracing::info!(
            target: AUDIT_TARGET,
            operation,
            args,
            outcome = "ok",
            duration_ms,
            "API Operation"
        ),
        Err(e) => tracing::info!(
            target: AUDIT_TARGET,
            operation,
            args,
            outcome = "error",
            error = %e,
            duration_ms,
            "API Operation"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_lines_go_to_the_file_with_outcome_and_no_other_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manta_api_audit.log");
        let subscriber = tracing_subscriber::registry().with(file_layer(&path).unwrap());
        tracing::subscriber::with_default(subscriber, || {
            record(
                true,
                "deploy_swarm",
                "cluster_id=c1, password=[REDACTED]",
                Ok(()),
                Duration::from_millis(3),
            );
            let err = Error::NotFound {
                message: "no cluster c2".into(),
            };
            record(
                true,
                "get_cluster",
                "cluster_id=c2",
                Err(&err),
                Duration::ZERO,
            );
            record(false, "not_audited", "", Ok(()), Duration::ZERO);
            tracing::info!("an ordinary log line");
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("operation=\"deploy_swarm\"")
                && lines[0].contains("outcome=\"ok\"")
                && lines[0].contains("duration_ms=3"),
            "{text}"
        );
        assert!(
            lines[1].contains("outcome=\"error\"") && lines[1].contains("no cluster c2"),
            "{text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
