//! The published node transport over MQTT v5: the manager subscribes to the node topics of
//! a broker, verifies the node JWT inside every heartbeat exactly as the gRPC path does, and
//! sends commands to nodes on topics whose last segment names the command.
//!
//! Nothing a node publishes is trusted for who it is: the broker's client id, user name and
//! topic say nothing the manager relies on. A heartbeat (`manager/set_system_summary`,
//! `MqMetricsSnapshot{token, snapshot}`) counts only when its token is a current node token
//! of a registered node. The shutdown notice (`manager/set_node_status`, a bare
//! `NodeStatus{DISCONNECTED}`) carries no token and no node id, so it is only a hint: the
//! manager then watches which nodes stop heartbeating within a short window and marks those
//! offline, so a forged notice costs nobody their liveness.
//!
//! A flood of forged heartbeats costs little: refused tokens are remembered by digest and
//! dropped unverified when they come again, signature checks of unknown tokens and the audit
//! rows of refusals draw on one budget per second, and beyond it unknown tokens are dropped
//! unverified until the budget refills (known-good tokens still pass). See `docs/mqtt.md`.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use manta_proto::common::informations::{NodeStatus, NodeStatusEnum};
use manta_proto::common::mqtt::MqMetricsSnapshot;
use prost::Message;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::audit::{Decision, Who};
use crate::error::{Error, Result};
use crate::identity::Core;
use crate::registry::{NodeAccess, NodeCaller};

/// Where nodes publish their heartbeats (the published node's topic).
pub const SYSTEM_SUMMARY_TOPIC: &str = "manager/set_system_summary";
/// Where nodes publish their shutdown notice (the published node's topic).
pub const NODE_STATUS_TOPIC: &str = "manager/set_node_status";
/// The commands of the published node, routed on the last segment of the topic.
pub const COMMANDS: &[&str] = &[
    "deploy_task",
    "stop_task",
    "stop_swarm",
    "collect_information",
    "stop_node",
    "update_node",
];
/// What `collect_information` may ask for; the node answers with the gRPC method of that
/// name (`SetNodeStatus`, `SetSystemSummary`, `SetOverviews`).
pub const COLLECTABLE: &[&str] = &["set_node_status", "set_system_summary", "set_overviews"];

/// The audit method name of refused MQTT heartbeats (a fixed name: the input is not
/// authenticated).
const AUDIT_METHOD: &str = "mqtt:manager/set_system_summary";
/// The largest MQTT packet the manager accepts; heartbeats are a few hundred bytes.
const MAX_PACKET_BYTES: u32 = 64 * 1024;
/// Refused-token digests remembered before the set is cleared and starts again.
const MAX_REMEMBERED: usize = 16_384;
/// Longest reconnection delay to the broker.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The topic of `command` for one node: `manta/nodes/<node_id>/<command>`.
pub fn command_topic(node_id: &str, command: &str) -> String {
    format!("manta/nodes/{node_id}/{command}")
}

/// The topics a node subscribes to (sent in `Registration.mqtt_topics`): its own command
/// tree. Broker ACLs grant each node read on this tree only (`docs/mqtt.md`).
pub fn node_topics(node_id: &str) -> Vec<String> {
    vec![command_topic(node_id, "+")]
}

/// How the manager reaches the broker and what it tells nodes.
#[derive(Clone)]
pub struct MqttSettings {
    /// The broker the manager connects to.
    pub broker: (String, u16),
    /// What nodes are told in `Registration` (by default the same as `broker`).
    pub advertise: (String, u16),
    /// The manager's broker user name.
    pub username: Option<String>,
    /// The manager's broker password.
    pub password: Option<SecretString>,
    /// The manager's MQTT client id.
    pub client_id: String,
    /// TLS to the broker; plaintext without it.
    pub tls: Option<manta_tls::ClientTls>,
    /// Refused heartbeats verified and audited per second (also the burst size).
    pub refusals_per_second: u32,
}

impl std::fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSettings")
            .field("broker", &self.broker)
            .field("advertise", &self.advertise)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("client_id", &self.client_id)
            .field("tls", &self.tls.is_some())
            .field("refusals_per_second", &self.refusals_per_second)
            .finish()
    }
}

impl MqttSettings {
    /// Plaintext settings for a broker at `host:port` with a user name and password, the
    /// broker advertised as it is reached.
    pub fn new(host: &str, port: u16, username: &str, password: SecretString) -> Self {
        MqttSettings {
            broker: (host.to_owned(), port),
            advertise: (host.to_owned(), port),
            username: Some(username.to_owned()),
            password: Some(password),
            client_id: "manta-manager".into(),
            tls: None,
            refusals_per_second: 50,
        }
    }
}

/// What happened to one heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heartbeat {
    /// Verified; the node is alive.
    Accepted {
        /// The node id from the verified token.
        node_id: String,
    },
    /// Refused and audited.
    Refused {
        /// Why (a fixed text: the input is not authenticated).
        reason: String,
    },
    /// Dropped without verification: a token refused before, or over the budget.
    Dropped,
}

/// Counters of the MQTT inbox, for tests and measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MqttStats {
    /// Heartbeats accepted.
    pub accepted: u64,
    /// Heartbeats refused (verified or decoded, and audited).
    pub refused: u64,
    /// Heartbeats dropped without verification.
    pub dropped: u64,
    /// DISCONNECTED notices received.
    pub hints: u64,
    /// Nodes marked offline after a notice was confirmed by missing heartbeats.
    pub confirmed_offline: u64,
}

#[derive(Debug)]
struct Budget {
    tokens: f64,
    last: Instant,
}

#[derive(Debug, Default)]
struct Inbox {
    /// Digest of a token accepted before -> its node.
    good: HashMap<[u8; 32], String>,
    /// Digests of tokens refused before.
    bad: HashSet<[u8; 32]>,
    /// The last MQTT heartbeat of each node.
    last_beat: HashMap<String, Instant>,
    /// When the pending DISCONNECTED notice arrived.
    hint_at: Option<Instant>,
    budget: Option<Budget>,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
    hints: AtomicU64,
    confirmed_offline: AtomicU64,
}

/// The manager's side of the MQTT transport. [`Core`] holds one when `[mqtt]` is set.
pub struct Mqtt {
    settings: MqttSettings,
    inbox: Mutex<Inbox>,
    counters: Counters,
    client: Mutex<Option<AsyncClient>>,
    /// Subscribed on the current broker connection.
    subscribed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Mqtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mqtt")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether an error says the token itself is bad (so the same token will never pass), as
/// opposed to a storage failure worth another try.
fn is_final(e: &Error) -> bool {
    matches!(
        e,
        Error::Token(_) | Error::NodeRefused(_) | Error::NodeForbidden(_)
    )
}

impl Mqtt {
    /// The transport over `settings`; [`spawn`] connects it.
    pub fn new(settings: MqttSettings) -> Self {
        Mqtt {
            settings,
            inbox: Mutex::new(Inbox::default()),
            counters: Counters::default(),
            client: Mutex::new(None),
            subscribed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the manager is connected to the broker and subscribed to the node topics.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    /// The settings.
    pub fn settings(&self) -> &MqttSettings {
        &self.settings
    }

    /// The counters so far.
    pub fn stats(&self) -> MqttStats {
        let c = &self.counters;
        MqttStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            hints: c.hints.load(Ordering::Relaxed),
            confirmed_offline: c.confirmed_offline.load(Ordering::Relaxed),
        }
    }

    fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        // Plain maps: a panic mid-update leaves them usable.
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one unit of the refusal budget.
    fn take_budget(&self, now: Instant) -> bool {
        let rate = f64::from(self.settings.refusals_per_second.max(1));
        let mut inbox = self.inbox();
        let budget = inbox.budget.get_or_insert(Budget {
            tokens: rate,
            last: now,
        });
        let refill = now.saturating_duration_since(budget.last).as_secs_f64() * rate;
        budget.tokens = (budget.tokens + refill).min(rate);
        budget.last = now;
        if budget.tokens >= 1.0 {
            budget.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refuse(&self, core: &Core, reason: String, audited: bool) -> Heartbeat {
        if !audited {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Heartbeat::Dropped;
        }
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        core.audit().record(Decision {
            who: Who::Nobody,
            method: Cow::Borrowed(AUDIT_METHOD),
            resource: None,
            allowed: false,
            reason: Cow::Owned(reason.clone()),
            peer: None,
            client: None,
        });
        Heartbeat::Refused { reason }
    }

    /// One heartbeat payload (`MqMetricsSnapshot`) from the broker, at `now`.
    pub fn heartbeat(&self, core: &Core, payload: &[u8], now: Instant) -> Heartbeat {
        let Ok(message) = MqMetricsSnapshot::decode(payload) else {
            let audited = self.take_budget(now);
            return self.refuse(core, "malformed heartbeat".into(), audited);
        };
        let token = message.token.trim();
        let key = digest(token);
        let known = {
            let inbox = self.inbox();
            if inbox.bad.contains(&key) {
                drop(inbox);
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return Heartbeat::Dropped;
            }
            inbox.good.contains_key(&key)
        };
        if !known && !self.take_budget(now) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Heartbeat::Dropped;
        }
        let registry = core.platform().registry();
        let verified = registry
            .authenticate(token, NodeAccess::Identity)
            .and_then(|caller| match caller {
                NodeCaller::Node { node_id, .. } => {
                    registry.heartbeat(&node_id)?;
                    Ok(node_id)
                }
                NodeCaller::Bootstrap { .. } => Err(Error::NodeForbidden(
                    "a bootstrap token cannot heartbeat; register the node first",
                )),
            });
        match verified {
            Ok(node_id) => {
                let mut inbox = self.inbox();
                if inbox.good.len() >= MAX_REMEMBERED {
                    inbox.good.clear();
                }
                inbox.good.insert(key, node_id.clone());
                inbox.last_beat.insert(node_id.clone(), now);
                drop(inbox);
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                Heartbeat::Accepted { node_id }
            }
            Err(e) => {
                let audited = !known || self.take_budget(now);
                if is_final(&e) {
                    let mut inbox = self.inbox();
                    inbox.good.remove(&key);
                    if inbox.bad.len() >= MAX_REMEMBERED {
                        inbox.bad.clear();
                    }
                    inbox.bad.insert(key);
                }
                self.refuse(core, e.to_string(), audited)
            }
        }
    }

    /// A `NodeStatus` payload on the status topic, at `now`. Returns when to check which
    /// nodes stopped heartbeating, if a check is newly due.
    pub fn node_status(&self, payload: &[u8], now: Instant, window: Duration) -> Option<Instant> {
        let status = NodeStatus::decode(payload).ok()?;
        if status.status != NodeStatusEnum::Disconnected as i32 {
            return None;
        }
        self.counters.hints.fetch_add(1, Ordering::Relaxed);
        let mut inbox = self.inbox();
        if inbox.hint_at.is_some() {
            // One check covers every notice that arrives before it runs.
            return None;
        }
        inbox.hint_at = Some(now);
        Some(now + window)
    }

    /// Runs the check a DISCONNECTED notice asked for: nodes whose last MQTT heartbeat came
    /// before the notice, and none since, are marked offline now. Returns them.
    pub fn confirm_disconnects(&self, core: &Core) -> Vec<String> {
        let gone: Vec<String> = {
            let mut inbox = self.inbox();
            let Some(at) = inbox.hint_at.take() else {
                return Vec::new();
            };
            let gone: Vec<String> = inbox
                .last_beat
                .iter()
                .filter(|(_, last)| **last < at)
                .map(|(id, _)| id.clone())
                .collect();
            for id in &gone {
                inbox.last_beat.remove(id);
            }
            gone
        };
        for id in &gone {
            match core.platform().registry().deregister(id) {
                Ok(()) => {
                    self.counters
                        .confirmed_offline
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(node_id = %id, "node disconnected from the broker");
                }
                Err(e) => tracing::warn!(node_id = %id, error = %e, "cannot mark the node offline"),
            }
        }
        gone
    }

    /// Publishes `command` to a node (QoS 1).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a command the published node does not know, [`Error::Server`]
    /// when the transport is not running.
    pub fn command(&self, node_id: &str, command: &str, payload: Vec<u8>) -> Result<()> {
        if !COMMANDS.contains(&command) {
            return Err(Error::Invalid {
                field: "command",
                reason: format!("use one of {}", COMMANDS.join(", ")),
            });
        }
        let client = self
            .client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| Error::Server("the MQTT transport is not running".into()))?;
        client
            .try_publish(
                command_topic(node_id, command),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .map_err(|e| Error::Server(format!("cannot publish to the MQTT broker: {e}")))
    }

    /// Asks a node for `what` (one of [`COLLECTABLE`]); it answers over gRPC.
    ///
    /// # Errors
    /// As [`Mqtt::command`], and [`Error::Invalid`] for an unknown `what`.
    pub fn collect_information(&self, node_id: &str, what: &str) -> Result<()> {
        if !COLLECTABLE.contains(&what) {
            return Err(Error::Invalid {
                field: "collect_information",
                reason: format!("ask for one of {}", COLLECTABLE.join(", ")),
            });
        }
        self.command(node_id, "collect_information", what.as_bytes().to_vec())
    }

    fn options(&self) -> MqttOptions {
        let s = &self.settings;
        let mut options = MqttOptions::new(s.client_id.clone(), s.broker.0.clone(), s.broker.1);
        options
            .set_keep_alive(Duration::from_secs(15))
            .set_clean_start(true)
            .set_max_packet_size(Some(MAX_PACKET_BYTES));
        if let (Some(user), Some(password)) = (&s.username, &s.password) {
            options.set_credentials(user.clone(), password.expose_secret().to_owned());
        }
        if let Some(tls) = &s.tls {
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.client_config_without_alpn()),
            ));
        }
        options
    }
}

/// The workspace's one backoff (`manta_auth::Backoff`), jittered.
fn backoff(failures: u32) -> Duration {
    manta_auth::Backoff::added_jitter(Duration::from_millis(250), BACKOFF_MAX, 0.25)
        .delay(failures.saturating_sub(1))
}

/// Connects the core's MQTT transport and serves it until the task is aborted: subscribes to
/// the node topics on every connection, feeds heartbeats to the registry and confirms
/// DISCONNECTED notices. `None` when the core has no `[mqtt]`.
pub fn spawn(core: Arc<Core>) -> Option<tokio::task::JoinHandle<()>> {
    let mqtt = Arc::clone(core.mqtt()?);
    let (client, mut events) = AsyncClient::new(mqtt.options(), 256);
    *mqtt.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(client.clone());
    let interval = core.platform().registry().settings().heartbeat_interval;
    // Long enough for every live node to heartbeat once more (the published node beats every
    // second; ours at the manager's interval).
    let window = interval.saturating_mul(2) + Duration::from_secs(1);
    Some(tokio::spawn(async move {
        let mut failures: u32 = 0;
        let mut check: Option<Instant> = None;
        loop {
            let due = check;
            tokio::select! {
                event = events.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if failures > 0 {
                            tracing::info!("connected to the MQTT broker again");
                        }
                        failures = 0;
                        for (topic, qos) in [
                            (SYSTEM_SUMMARY_TOPIC, QoS::AtMostOnce),
                            (NODE_STATUS_TOPIC, QoS::AtLeastOnce),
                        ] {
                            if let Err(e) = client.try_subscribe(topic, qos) {
                                tracing::warn!(topic, error = %e, "cannot subscribe");
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        mqtt.subscribed.store(true, Ordering::Relaxed);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let now = Instant::now();
                        if p.topic.as_ref() == SYSTEM_SUMMARY_TOPIC.as_bytes() {
                            if let Heartbeat::Refused { reason } = mqtt.heartbeat(&core, &p.payload, now) {
                                tracing::debug!(reason = %reason, "MQTT heartbeat refused");
                            }
                        } else if p.topic.as_ref() == NODE_STATUS_TOPIC.as_bytes()
                            && let Some(at) = mqtt.node_status(&p.payload, now, window)
                        {
                            check = Some(at);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        mqtt.subscribed.store(false, Ordering::Relaxed);
                        failures = failures.saturating_add(1);
                        if failures == 1 || failures.is_power_of_two() {
                            let broker = format!("{}:{}", mqtt.settings.broker.0, mqtt.settings.broker.1);
                            // A refused login is not an outage: say which settings to fix.
                            if matches!(
                                e,
                                rumqttc::v5::ConnectionError::ConnectionRefused(
                                    rumqttc::v5::mqttbytes::v5::ConnectReturnCode::BadUserNamePassword
                                        | rumqttc::v5::mqttbytes::v5::ConnectReturnCode::NotAuthorized
                                )
                            ) {
                                tracing::error!(failures, error = %e, broker = %broker, "the MQTT broker refused the manager's account; check [mqtt] username and password (e.g. password = \"${{MANTA_MQTT_PASSWORD}}\"); retrying");
                            } else {
                                tracing::warn!(failures, error = %e, broker = %broker, "MQTT broker unreachable; check that it runs at [mqtt] broker; retrying");
                            }
                        }
                        tokio::time::sleep(backoff(failures)).await;
                    }
                },
                () = async { tokio::time::sleep_until(due.unwrap_or_else(Instant::now)).await }, if due.is_some() => {
                    check = None;
                    // Marking offline writes the store: off the async workers.
                    let (core, mqtt) = (Arc::clone(&core), Arc::clone(&mqtt));
                    let _ = tokio::task::spawn_blocking(move || mqtt.confirm_disconnects(&core)).await;
                }
            }
        }
    }))
}
