//! The agent: load and validate the configuration, take the alias's lock, register (resuming
//! the identity kept in the state file), then heartbeat and renew until told to stop, and
//! deregister on the way out.
//!
//! [`Agent::prepare`] does the local part (no network), so the binary can set up logging
//! with the alias before anything is logged; [`Prepared::start`] registers and spawns the
//! run loop on the current tokio runtime and returns a [`RunningAgent`] whose
//! [`AgentHandle`] reloads (SIGHUP) or stops (SIGTERM) it. Tests run agents in-process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use manta_auth::{RefreshConfig, SharedClock, TokenSource};
use manta_config::{
    ConfigError, Env, MSG_TOKEN_INVALID, MantaHome, NodeConfig, Problem, SECURED_TOKEN_KEY,
    Severity,
};
use secrecy::SecretString;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{ManagerClient, NodeRefresher, Registered, client_tls, is_retryable};
use crate::error::NodeError;
use crate::identity::{IdentityState, NodeIdentity, hostname, state_dir};
use crate::runfile::{RunInfo, RunLock, process_start_ticks, run_dir};

/// Heartbeat interval when neither the manager nor the options say (the SDK examples treat
/// a node as gone after 30 s without one).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// First reconnection delay after a failed heartbeat.
const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Largest reconnection delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a clean stop waits for `Deregister`.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(3);

/// What the agent needs to start.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The node configuration file.
    pub config_path: PathBuf,
    /// `MANTA_HOME` (state, run and log files).
    pub home: MantaHome,
    /// The environment the configuration is substituted from.
    pub env: Env,
    /// `--alias`: overrides the configured alias.
    pub alias: Option<String>,
    /// Heartbeat interval; by default the manager's `heartbeat_interval_seconds`.
    pub heartbeat_interval: Option<Duration>,
    /// The clock for token renewal (tests jump it); the system clock by default.
    pub clock: Option<SharedClock>,
    /// The host name used when no alias is set; `uname -n` by default.
    pub hostname: Option<String>,
}

impl AgentOptions {
    /// Options for `config_path` with the given home and environment, everything else
    /// default.
    pub fn new(config_path: impl Into<PathBuf>, home: MantaHome, env: Env) -> Self {
        Self {
            config_path: config_path.into(),
            home,
            env,
            alias: None,
            heartbeat_interval: None,
            clock: None,
            hostname: None,
        }
    }

    /// The agent's one clock: [`AgentOptions::clock`], or the system clock.
    #[must_use]
    pub fn clock(&self) -> SharedClock {
        self.clock.clone().unwrap_or_else(manta_auth::system_clock)
    }
}

/// Where the agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentState {
    /// Registering.
    Starting,
    /// Registered, heartbeats answered.
    Registered,
    /// The manager did not answer the last heartbeat; retrying with backoff.
    Reconnecting,
    /// Deregistering.
    Stopping,
    /// The run loop has ended.
    Stopped,
}

impl AgentState {
    /// Lower-case name, as written to the run file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Registered => "registered",
            Self::Reconnecting => "reconnecting",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
        }
    }
}

/// A snapshot of the agent, published on every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    /// The state.
    pub state: AgentState,
    /// The alias.
    pub alias: String,
    /// The node id the manager assigned.
    pub node_id: String,
    /// Whether the identity was resumed from the state file at start.
    pub resumed: bool,
    /// Successful registrations (1 after start; more after recoveries).
    pub registrations: u64,
    /// Heartbeats answered.
    pub heartbeats: u64,
    /// Node tokens renewed.
    pub renewals: u64,
    /// Configuration reloads applied.
    pub reloads: u64,
    /// When the current node token expires.
    pub token_expires_at: Option<SystemTime>,
    /// The last error, if the last attempt failed.
    pub last_error: Option<String>,
}

enum Command {
    Reload(Option<Env>),
    Shutdown,
}

/// Controls a running agent. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AgentHandle {
    commands: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<AgentStatus>,
}

impl AgentHandle {
    /// Re-reads the configuration (SIGHUP): a new `secured_token` becomes the token used
    /// for re-registration, a new manager address reconnects and registers there.
    pub fn reload(&self) {
        let _ = self.commands.send(Command::Reload(None));
    }

    /// As [`AgentHandle::reload`], substituting from `env` from now on (a running
    /// process cannot see changes to its own environment; tests and embedders can).
    pub fn reload_with_env(&self, env: Env) {
        let _ = self.commands.send(Command::Reload(Some(env)));
    }

    /// Deregisters and stops (SIGTERM, SIGINT).
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }

    /// The latest status.
    pub fn status(&self) -> AgentStatus {
        self.status.borrow().clone()
    }

    /// A receiver to await status changes.
    pub fn watch(&self) -> watch::Receiver<AgentStatus> {
        self.status.clone()
    }
}

/// The entry point.
#[derive(Debug)]
pub struct Agent;

impl Agent {
    /// Loads and validates the configuration, resolves the identity and takes the alias's
    /// lock. No network access.
    ///
    /// # Errors
    /// [`NodeError::Config`] (exit code 78) for an unusable configuration,
    /// [`NodeError::DuplicateAlias`] when an agent with this alias already runs here.
    pub fn prepare(options: AgentOptions) -> Result<Prepared, NodeError> {
        let host = options.hostname.clone().unwrap_or_else(hostname);
        let checked = preflight(
            &options.config_path,
            &options.env,
            &options.home,
            options.alias.as_deref(),
            &host,
        )?;
        let lock = RunLock::acquire(&run_dir(&options.home), &checked.identity.alias)?;
        Ok(Prepared {
            options,
            config: checked.config,
            identity: checked.identity,
            state_path: checked.state_path,
            saved: checked.saved,
            tls: checked.tls,
            lock,
            warnings: checked.warnings,
            log_file: None,
        })
    }

    /// [`Agent::prepare`] then [`Prepared::start`].
    ///
    /// # Errors
    /// As both.
    pub async fn start(options: AgentOptions) -> Result<RunningAgent, NodeError> {
        Self::prepare(options)?.start().await
    }
}

/// What [`preflight`] found: a configuration `start` can connect with.
#[derive(Debug)]
pub struct Preflight {
    /// The loaded configuration.
    pub config: NodeConfig,
    /// Who the node will be.
    pub identity: NodeIdentity,
    /// Its state file.
    pub state_path: PathBuf,
    /// The saved identity for this alias and manager, if any.
    pub saved: Option<IdentityState>,
    /// The loaded certificate folder when `use_tls` is set.
    pub tls: Option<manta_tls::ClientTls>,
    /// Findings that do not block the start.
    pub warnings: Vec<Problem>,
}

/// Every check `manta_node start` makes before it connects, in its order: the file loads
/// (syntax, `${VAR}` substitution, permissions), the identity resolves, the state file is
/// usable, every validation rule passes, and the certificate folder loads. `config
/// validate` calls this too, so both commands fail on the same problems with the same
/// text. Reads files only: no network, no lock (a running agent is not a configuration
/// problem), nothing written.
///
/// # Errors
/// The first problem found, as `start` reports it.
pub fn preflight(
    config_path: &std::path::Path,
    env: &Env,
    home: &MantaHome,
    alias: Option<&str>,
    host: &str,
) -> Result<Preflight, NodeError> {
    let config = NodeConfig::load(config_path, env)?.value;
    // The seed's validation first, so a bad configured alias is reported as the seed's
    // "Invalid alias format" with its solutions; only an expired bootstrap token waits for
    // the state file (below), which may make it harmless.
    check(&config, true, SystemTime::now())?;
    let identity = NodeIdentity::resolve(&config.identity, alias, host)?;
    let endpoint = format!(
        "{}:{}",
        config.network.manager_host, config.network.manager_port
    );
    let state_path = IdentityState::path(&state_dir(home), &identity.node_id);
    let saved = if identity.random_id {
        None
    } else {
        IdentityState::load(&state_path)?
            .filter(|s| s.manager == endpoint && s.alias == identity.alias)
    };
    let warnings = check(&config, saved.is_some(), SystemTime::now())?;
    let tls = client_tls(&config, env)?;
    Ok(Preflight {
        config,
        identity,
        state_path,
        saved,
        tls,
        warnings,
    })
}

/// Validation, with one exception: when a saved node identity can be resumed, an expired
/// bootstrap token is only a warning (the node does not need it unless it must register
/// from scratch). Returns the problems that do not block, to be shown as warnings.
fn check(config: &NodeConfig, resumable: bool, now: SystemTime) -> Result<Vec<Problem>, NodeError> {
    let report = config.validate(now);
    let blocking: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .filter(|p| !(resumable && p.key == SECURED_TOKEN_KEY && p.message == MSG_TOKEN_INVALID))
        .cloned()
        .collect();
    if blocking.is_empty() {
        Ok(report
            .problems
            .into_iter()
            .filter(|p| !blocking.contains(p))
            .collect())
    } else {
        Err(NodeError::Config(ConfigError::Validation {
            problems: report.problems,
        }))
    }
}

/// An agent ready to register (configuration valid, alias locked).
#[derive(Debug)]
pub struct Prepared {
    options: AgentOptions,
    config: NodeConfig,
    identity: NodeIdentity,
    state_path: PathBuf,
    saved: Option<IdentityState>,
    tls: Option<manta_tls::ClientTls>,
    lock: RunLock,
    warnings: Vec<Problem>,
    log_file: Option<PathBuf>,
}

impl Prepared {
    /// Validation findings that do not block the start (long alias, an expired bootstrap
    /// token while a saved identity can be resumed).
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// Who this agent will be.
    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// The loaded configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Records where this run logs, for `manta_node status --json`.
    pub fn set_log_file(&mut self, path: Option<PathBuf>) {
        self.log_file = path;
    }

    /// Registers with the manager and spawns the run loop.
    ///
    /// # Errors
    /// [`NodeError::Unavailable`] (manager unreachable), [`NodeError::InvalidToken`]
    /// (no usable token), [`NodeError::DuplicateAlias`] (alias online elsewhere), or a
    /// state-file error.
    pub async fn start(self) -> Result<RunningAgent, NodeError> {
        let started_at = self.options.clock().unix_now();
        let client = ManagerClient::with_tls(&self.config, self.tls.as_ref())?;
        let (requests_tx, requests) = mpsc::channel(8);
        let mut run = Run {
            refresh: refresh_config(&self.config),
            bootstrap: self.config.identity.secured_token.clone(),
            client,
            status: AgentStatus {
                state: AgentState::Starting,
                alias: self.identity.alias.clone(),
                node_id: self.identity.node_id.clone(),
                resumed: false,
                registrations: 0,
                heartbeats: 0,
                renewals: 0,
                reloads: 0,
                token_expires_at: None,
                last_error: None,
            },
            source: None,
            saved_exp: None,
            heartbeat: self.options.heartbeat_interval.unwrap_or(DEFAULT_HEARTBEAT),
            run_info: RunInfo {
                alias: self.identity.alias.clone(),
                node_id: self.identity.node_id.clone(),
                pid: std::process::id(),
                start_ticks: process_start_ticks(std::process::id()).unwrap_or(0),
                config: self.options.config_path.clone(),
                manager: String::new(),
                state: AgentState::Starting.as_str().to_owned(),
                started_at,
                log_file: self.log_file,
            },
            options: self.options,
            identity: self.identity,
            state_path: self.state_path,
            lock: self.lock,
            status_tx: None,
            node_config: self.config.clone(),
            mqtt: None,
            requests_tx,
        };
        run.run_info.manager = run.client.endpoint().to_owned();
        run.publish_run_file();
        run.establish(self.saved).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (status_tx, status_rx) = watch::channel(run.status.clone());
        run.status_tx = Some(status_tx);
        let identity = run.identity.clone();
        let task = tokio::spawn(run.main_loop(rx, requests));
        Ok(RunningAgent {
            handle: AgentHandle {
                commands: tx,
                status: status_rx,
            },
            identity,
            task,
        })
    }
}

/// A registered agent whose loop runs in a tokio task.
#[derive(Debug)]
pub struct RunningAgent {
    /// Reload, stop, observe.
    pub handle: AgentHandle,
    /// Who it is (the node id is the one asked for; see the status for the assigned one).
    pub identity: NodeIdentity,
    task: JoinHandle<Result<(), NodeError>>,
}

impl RunningAgent {
    /// Waits for the loop to end: `Ok` after a clean stop, the error that stopped it
    /// otherwise.
    ///
    /// # Errors
    /// [`NodeError::IdentityLost`] when the node could neither renew nor re-register.
    pub async fn wait(self) -> Result<(), NodeError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(NodeError::BadResponse {
                operation: "agent",
                detail: format!("the agent task failed: {e}"),
            }),
        }
    }
}

fn refresh_config(config: &NodeConfig) -> RefreshConfig {
    let mut r = RefreshConfig::default();
    r.margin = Duration::from_secs(config.security.jwt_refresh_buffer_seconds);
    r
}

/// The loop's state.
struct Run {
    options: AgentOptions,
    identity: NodeIdentity,
    state_path: PathBuf,
    lock: RunLock,
    client: ManagerClient,
    refresh: RefreshConfig,
    /// The configured `secured_token` (bootstrap), for registering from scratch.
    bootstrap: Option<SecretString>,
    /// The node token and its renewal engine, once registered.
    source: Option<Arc<TokenSource>>,
    /// `exp` of the token last written to the state file.
    saved_exp: Option<SystemTime>,
    heartbeat: Duration,
    status: AgentStatus,
    status_tx: Option<watch::Sender<AgentStatus>>,
    run_info: RunInfo,
    /// The configuration at start (TLS material for the broker).
    node_config: NodeConfig,
    /// The MQTT transport, when the manager named a broker.
    mqtt: Option<crate::mqtt::Link>,
    /// Where the MQTT link sends `collect_information` requests.
    requests_tx: mpsc::Sender<String>,
}

impl Run {
    fn set_state(&mut self, state: AgentState) {
        let changed = self.status.state != state;
        self.status.state = state;
        if changed {
            self.run_info.state = state.as_str().to_owned();
            self.publish_run_file();
        }
        self.notify();
    }

    fn notify(&self) {
        if let Some(tx) = &self.status_tx {
            tx.send_replace(self.status.clone());
        }
    }

    fn publish_run_file(&mut self) {
        self.run_info.node_id.clone_from(&self.status.node_id);
        if let Err(e) = self.lock.publish(&self.run_info) {
            tracing::warn!(error = %e, "cannot update the run file; `manta_node status` may be stale");
        }
    }

    fn new_source(&self, token: SecretString) -> Result<Arc<TokenSource>, NodeError> {
        let refresher = Arc::new(NodeRefresher::new(self.client.clone()));
        let source =
            TokenSource::with_clock(token, refresher, self.refresh.clone(), self.options.clock())
                .map_err(|e| NodeError::Usage(e.to_string()))?;
        Ok(Arc::new(source))
    }

    /// First registration: resume the saved identity (renewing it first if it expired
    /// while the node was offline), else register with the bootstrap token.
    async fn establish(&mut self, saved: Option<IdentityState>) -> Result<(), NodeError> {
        if let Some(saved) = saved {
            let source = self.new_source(saved.node_token)?;
            let saved_exp = source.expires_at();
            // Renews now when the saved token is due or expired (within the manager's grace
            // window); a rejected renewal falls through to the bootstrap token.
            match source.token().await {
                Ok(token) => match self.client.register(&token, &self.identity).await {
                    Ok(reg) => {
                        self.status.resumed = true;
                        if source.expires_at() != saved_exp {
                            self.status.renewals += 1;
                        }
                        return self.registered(reg);
                    }
                    Err(e) if is_retryable(&e) || matches!(e, NodeError::DuplicateAlias { .. }) => {
                        return Err(e);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the saved node identity was refused; registering with the bootstrap token");
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "the saved node token could not be renewed; registering with the bootstrap token");
                }
            }
        }
        self.register_bootstrap().await
    }

    async fn register_bootstrap(&mut self) -> Result<(), NodeError> {
        let token = self.bootstrap.clone().ok_or(NodeError::TokenRequired)?;
        self.client.is_available(&token).await?;
        let reg = self.client.register(&token, &self.identity).await?;
        self.registered(reg)
    }

    /// Records a registration: state file, token source, status.
    fn registered(&mut self, reg: Registered) -> Result<(), NodeError> {
        let source = self.new_source(reg.node_token.clone())?;
        let state = IdentityState {
            node_id: reg.node_id.clone(),
            alias: self.identity.alias.clone(),
            node_token: reg.node_token,
            cluster_id: reg.cluster_id,
            manager: self.client.endpoint().to_owned(),
            random_id: self.identity.random_id,
            registered_at: self.options.clock().unix_now(),
        };
        // The file is named by the requested id (the alias for fixed ids), which is what the
        // next start knows before talking to the manager; it records the assigned id inside.
        state.save(&self.state_path)?;
        self.saved_exp = source.expires_at();
        match &reg.broker {
            Some(broker) if self.mqtt.as_ref().is_none_or(|l| l.broker() != broker) => {
                self.mqtt = Some(crate::mqtt::Link::start(
                    broker,
                    &reg.node_id,
                    &self.node_config,
                    &self.options.env,
                    self.requests_tx.clone(),
                )?);
                tracing::info!(broker = %format!("{}:{}", broker.host, broker.port), "heartbeats go over MQTT");
            }
            Some(_) => {}
            None => self.mqtt = None,
        }
        if self.options.heartbeat_interval.is_none()
            && let Some(every) = reg.heartbeat_interval
        {
            self.heartbeat = every;
        }
        self.status.node_id = reg.node_id;
        self.status.registrations += 1;
        self.status.token_expires_at = source.expires_at();
        self.status.last_error = None;
        self.source = Some(source);
        tracing::info!(
            alias = %self.identity.alias,
            node_id = %self.status.node_id,
            manager = %self.client.endpoint(),
            resumed = self.status.resumed,
            heartbeat_secs = self.heartbeat.as_secs_f64(),
            "node registered"
        );
        self.set_state(AgentState::Registered);
        Ok(())
    }

    /// Writes the state file again when the token was renewed.
    fn persist_if_renewed(&mut self, source: &TokenSource) {
        let exp = source.expires_at();
        if exp == self.saved_exp {
            return;
        }
        let state = IdentityState {
            node_id: self.status.node_id.clone(),
            alias: self.identity.alias.clone(),
            node_token: source.current(),
            cluster_id: None,
            manager: self.client.endpoint().to_owned(),
            random_id: self.identity.random_id,
            registered_at: self.options.clock().unix_now(),
        };
        let cluster_id = IdentityState::load(&self.state_path)
            .ok()
            .flatten()
            .and_then(|s| s.cluster_id);
        let state = IdentityState {
            cluster_id,
            ..state
        };
        match state.save(&self.state_path) {
            Ok(()) => {
                self.saved_exp = exp;
                self.status.renewals += 1;
                self.status.token_expires_at = exp;
                tracing::info!(node_id = %self.status.node_id, "node token renewed");
                self.notify();
            }
            Err(e) => tracing::error!(error = %e, "cannot save the renewed node token"),
        }
    }

    /// The current node token, renewed first when due. `None` when it expired and could
    /// not be renewed.
    async fn token(&mut self) -> Option<SecretString> {
        let source = self.source.clone()?;
        let result = source.token().await;
        self.persist_if_renewed(&source);
        result.ok()
    }

    /// After the node token became unusable: re-register with the bootstrap token. An
    /// error that retrying cannot fix ends the agent.
    async fn recover(&mut self, why: &str) -> Result<(), NodeError> {
        tracing::warn!(
            reason = why,
            "node identity unusable; registering again with the bootstrap token"
        );
        match self.register_bootstrap().await {
            Ok(()) => Ok(()),
            Err(e) if is_retryable(&e) => Err(e),
            Err(e) => Err(NodeError::IdentityLost {
                detail: format!(
                    "{why}; registering with the bootstrap token failed: {}",
                    e.headline()
                ),
            }),
        }
    }

    async fn main_loop(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut requests: mpsc::Receiver<String>,
    ) -> Result<(), NodeError> {
        let mut failures: u32 = 0;
        let mut next_beat = Instant::now() + self.heartbeat;
        let outcome = loop {
            let renew_at = self
                .source
                .as_ref()
                .and_then(|s| s.refresh_due_in())
                .map(|d| Instant::now() + d);
            let wake = renew_at.map_or(next_beat, |r| r.min(next_beat));
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                Some(what) = requests.recv() => {
                    self.answer(&what).await;
                    continue;
                }
                cmd = commands.recv() => match cmd {
                    Some(Command::Reload(env)) => {
                        if self.reload(env).await {
                            next_beat = Instant::now();
                        }
                        continue;
                    }
                    Some(Command::Shutdown) | None => break Ok(()),
                },
            }
            let now = Instant::now();
            if renew_at.is_some_and(|r| now >= r) && now < next_beat {
                // Renewal only; a failure is retried by the engine's own backoff and
                // surfaces at the next heartbeat if the token runs out.
                let _ = self.token().await;
                continue;
            }
            match self.beat().await {
                Ok(()) => {
                    failures = 0;
                    next_beat = Instant::now() + self.heartbeat;
                }
                Err(e) if is_retryable(&e) => {
                    failures = failures.saturating_add(1);
                    let delay = backoff(failures);
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(failures, retry_in_ms = delay.as_millis() as u64, error = %e, "manager unreachable; retrying");
                    }
                    self.status.last_error = Some(e.to_string());
                    self.set_state(AgentState::Reconnecting);
                    next_beat = Instant::now() + delay;
                }
                Err(e) => break Err(e),
            }
        };
        self.finish(&outcome).await;
        outcome
    }

    /// One heartbeat, with recovery when the manager no longer accepts the token.
    async fn beat(&mut self) -> Result<(), NodeError> {
        let Some(token) = self.token().await else {
            return self
                .recover("the node token expired and renewal failed")
                .await;
        };
        if let Some(link) = &self.mqtt {
            // The published transport: the manager verifies the token inside the message
            // and does not answer; renewal still goes over gRPC.
            // (The link itself logs "MQTT broker reachable again", with the broker address.)
            link.heartbeat(&token)?;
            self.status.heartbeats += 1;
            self.status.last_error = None;
            self.set_state(AgentState::Registered);
            return Ok(());
        }
        match self.client.heartbeat(&token, 0).await {
            Ok(resp) => {
                if self.status.state != AgentState::Registered {
                    tracing::info!(manager = %self.client.endpoint(), "manager reachable again");
                }
                if self.options.heartbeat_interval.is_none() && resp.interval_seconds > 0 {
                    self.heartbeat = Duration::from_secs(u64::from(resp.interval_seconds));
                }
                self.status.heartbeats += 1;
                self.status.last_error = None;
                tracing::trace!(heartbeats = self.status.heartbeats, "heartbeat");
                self.set_state(AgentState::Registered);
                Ok(())
            }
            Err(NodeError::InvalidToken { detail }) => {
                // Renew once for this token (the manager may have restarted with a shorter
                // grace, or revoked it); then fall back to the bootstrap token.
                let source = self.source.clone();
                if let Some(source) = source
                    && source.on_unauthenticated(&token).await.is_ok()
                {
                    self.persist_if_renewed(&source);
                    return Ok(());
                }
                self.recover(&format!("the manager refused the node token ({detail})"))
                    .await
            }
            Err(NodeError::Refused { detail, .. }) => {
                // The manager no longer knows this node (e.g. its registry was reset):
                // register again, with the node token first.
                tracing::warn!(detail = %detail, "manager refused the heartbeat; registering again");
                match self.client.register(&token, &self.identity).await {
                    Ok(reg) => self.registered(reg),
                    Err(e) if is_retryable(&e) => Err(e),
                    Err(_) => self.recover(&detail).await,
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Answers the manager's `collect_information` over gRPC, as the published node does.
    async fn answer(&mut self, what: &str) {
        let Some(token) = self.token().await else {
            return;
        };
        let result = match what {
            "set_system_summary" => self.client.set_system_summary(&token).await,
            "set_node_status" => self.client.set_node_status(&token).await,
            other => {
                tracing::warn!(what = %other.chars().take(64).collect::<String>(), "collect_information for something this node does not send; ignored");
                return;
            }
        };
        if let Err(e) = result {
            tracing::warn!(what, error = %e, "cannot answer collect_information");
        }
    }

    /// SIGHUP: re-read the configuration. Returns whether to heartbeat at once.
    async fn reload(&mut self, env: Option<Env>) -> bool {
        if let Some(env) = env {
            self.options.env = env;
        }
        let config = match NodeConfig::load(&self.options.config_path, &self.options.env) {
            Ok(l) => l.value,
            Err(e) => {
                tracing::error!(error = %e, "reload failed; keeping the running configuration");
                return false;
            }
        };
        if let Err(e) = check(&config, true, self.options.clock().now()) {
            tracing::error!(error = %e, "reload failed; keeping the running configuration");
            return false;
        }
        self.bootstrap = config.identity.secured_token.clone();
        self.refresh = refresh_config(&config);
        self.status.reloads += 1;
        let endpoint = format!(
            "{}:{}",
            config.network.manager_host, config.network.manager_port
        );
        let mut immediate = false;
        if endpoint != self.client.endpoint() {
            match ManagerClient::new(&config, &self.options.env) {
                Ok(client) => {
                    tracing::info!(manager = %endpoint, "manager address changed; registering there");
                    self.client = client;
                    self.run_info.manager = endpoint;
                    self.source = None;
                    if let Err(e) = self.register_bootstrap().await {
                        self.status.last_error = Some(e.to_string());
                    }
                    immediate = true;
                }
                Err(e) => tracing::error!(error = %e, "cannot use the new manager address"),
            }
        }
        tracing::info!(reloads = self.status.reloads, "configuration reloaded");
        self.notify();
        immediate
    }

    /// Deregisters (best effort, bounded) and cleans up.
    async fn finish(&mut self, outcome: &Result<(), NodeError>) {
        if let Some(link) = self.mqtt.take() {
            link.shutdown(DEREGISTER_TIMEOUT).await;
        }
        if outcome.is_ok() {
            self.set_state(AgentState::Stopping);
            if let Some(source) = &self.source {
                let token = source.current();
                match tokio::time::timeout(
                    DEREGISTER_TIMEOUT,
                    self.client.deregister(&token, "agent stopped"),
                )
                .await
                {
                    Ok(Ok(())) => {
                        tracing::info!(node_id = %self.status.node_id, "node deregistered")
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "deregistration failed"),
                    Err(_) => tracing::warn!("deregistration timed out"),
                }
            }
            if self.identity.random_id {
                // An ephemeral id is never resumed; its token must not linger on disk.
                let _ = std::fs::remove_file(&self.state_path);
            }
        } else if let Err(e) = outcome {
            tracing::error!(error = %e, "agent stopped");
        }
        self.set_state(AgentState::Stopped);
    }
}

/// Capped exponential backoff with up to 25 % jitter, so a fleet reconnecting after a
/// manager restart does not arrive in lockstep.
fn backoff(failures: u32) -> Duration {
    manta_auth::Backoff::added_jitter(BACKOFF_INITIAL, BACKOFF_MAX, 0.25)
        .delay(failures.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(token: &str, alias: &str) -> NodeConfig {
        let env = Env::from_pairs([("T", token)]);
        NodeConfig::from_toml(
            &format!("[identity]\nsecured_token = \"${{T}}\"\nalias = \"{alias}\"\n"),
            &env,
        )
        .unwrap()
    }

    /// A JWT-shaped token expiring at `exp` (only the manager checks signatures).
    fn jwt(exp: u64) -> String {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.c2ln",
            b.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            b.encode(format!(r#"{{"exp":{exp}}}"#))
        )
    }

    #[test]
    fn expired_bootstrap_blocks_only_without_a_saved_identity() {
        let expired = config(&jwt(1_600_000_000), "w");
        let err = check(&expired, false, SystemTime::now()).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_CONFIG);
        assert!(
            err.to_string().contains("Invalid or expired JWT token"),
            "{err}"
        );
        let warnings = check(&expired, true, SystemTime::now()).unwrap();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].message, MSG_TOKEN_INVALID);
        // Other problems block even when resuming.
        let bad_alias = config(&jwt(1_600_000_000), "bad alias");
        assert!(check(&bad_alias, true, SystemTime::now()).is_err());
        check(&config(&jwt(4_000_000_000), "w"), false, SystemTime::now()).unwrap();
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let first = backoff(1);
        assert!(first >= BACKOFF_INITIAL && first <= BACKOFF_INITIAL.mul_f64(1.25));
        assert!(backoff(3) >= BACKOFF_INITIAL * 4);
        for n in [10, 100, u32::MAX] {
            let d = backoff(n);
            assert!(
                d >= BACKOFF_MAX && d <= BACKOFF_MAX.mul_f64(1.25),
                "{n}: {d:?}"
            );
        }
        let spread: std::collections::HashSet<_> = (0..20).map(|_| backoff(5)).collect();
        assert!(spread.len() > 1, "jitter must vary");
    }
}
