//! The published node transport over MQTT v5, used when `Registration` names a broker:
//! client id = the node id, user name and password from `BROKER_USERNAME` and
//! `BROKER_PASSWORD`, the registration's topics at QoS 1, a heartbeat
//! (`manager/set_system_summary` carrying `MqMetricsSnapshot{token}`) every interval, and
//! `NodeStatus{DISCONNECTED}` on `manager/set_node_status` at shutdown.
//!
//! TLS as the published node chooses it: the certificate folder's `mqtt.crt`/`mqtt.key`
//! (with its `ca.crt`) when `use_tls` is set and they exist, otherwise server-only TLS on
//! port 8883 (the folder's `ca.crt` when there is one, else the system roots).

use std::path::Path;
use std::time::Duration;

use manta_config::{Env, NodeConfig};
use manta_proto::common::informations::{MetricsSnapshot, NodeStatus, NodeStatusEnum};
use manta_proto::common::mqtt::MqMetricsSnapshot;
use prost::Message as _;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::NodeError;

/// The variables holding the node's broker account (the published node's names).
pub(crate) const USERNAME_VAR: &str = "BROKER_USERNAME";
/// See [`USERNAME_VAR`].
pub(crate) const PASSWORD_VAR: &str = "BROKER_PASSWORD";
const HEARTBEAT_TOPIC: &str = "manager/set_system_summary";
const STATUS_TOPIC: &str = "manager/set_node_status";
/// Consecutive credential refusals before the node gives up (as the published node does).
const MAX_AUTH_REFUSALS: u32 = 3;
/// Published node: session kept by the broker for 300 s after a disconnect.
const SESSION_EXPIRY_SECS: u32 = 300;
const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The broker a registration named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Topics to subscribe to.
    pub topics: Vec<String>,
}

impl Broker {
    /// The broker of a `Registration`, `None` when it names none (empty host or port 0).
    pub(crate) fn from_registration(host: &str, port: u32, topics: Vec<String>) -> Option<Self> {
        let port = u16::try_from(port).ok().filter(|p| *p > 0)?;
        (!host.trim().is_empty()).then(|| Broker {
            host: host.trim().to_owned(),
            port,
            topics,
        })
    }

    fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The connection's state as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkState {
    Connecting,
    Connected,
    /// The broker refused the credentials too often: the agent stops with this.
    Refused(String),
}

/// A running MQTT connection.
pub(crate) struct Link {
    broker: Broker,
    client: AsyncClient,
    state: watch::Receiver<LinkState>,
    task: JoinHandle<()>,
}

fn tls_for(
    broker: &Broker,
    config: &NodeConfig,
    env: &Env,
) -> Result<Option<manta_tls::ClientTls>, NodeError> {
    let folder = config
        .security
        .use_tls
        .then(|| config.cert_folder(env))
        .filter(|f| f.is_dir());
    let file = |f: &Path, name: &str| Some(f.join(name)).filter(|p| p.is_file());
    if let Some(f) = &folder
        && let (Some(cert), Some(key)) = (file(f, "mqtt.crt"), file(f, "mqtt.key"))
    {
        let ca = file(f, "ca.crt");
        return Ok(Some(manta_tls::ClientTls::from_files(
            ca.as_deref(),
            Some((&cert, &key)),
        )?));
    }
    // With `use_tls` the broker link is TLS too, whatever its port: the broker password and
    // the node token in every heartbeat must not cross the network in clear because the
    // manager named a plaintext port.
    if broker.port == 8883 || config.security.use_tls {
        let ca = folder.as_deref().and_then(|f| file(f, "ca.crt"));
        return Ok(Some(manta_tls::ClientTls::from_files(ca.as_deref(), None)?));
    }
    Ok(None)
}

/// The workspace's one backoff, with jitter so a fleet does not reconnect in lockstep.
fn backoff(failures: u32) -> Duration {
    manta_auth::Backoff::added_jitter(BACKOFF_INITIAL, BACKOFF_MAX, 0.25)
        .delay(failures.saturating_sub(1))
}

impl Link {
    /// Connects to `broker` as `node_id`, with the account in the environment;
    /// `collect_information` requests (what to send) go to `requests`.
    ///
    /// # Errors
    /// [`NodeError::Broker`] when `BROKER_USERNAME` or `BROKER_PASSWORD` is not set,
    /// [`NodeError::Tls`] for unusable TLS material.
    pub(crate) fn start(
        broker: &Broker,
        node_id: &str,
        config: &NodeConfig,
        env: &Env,
        requests_tx: mpsc::Sender<String>,
    ) -> Result<Link, NodeError> {
        let (Some(user), Some(password)) = (
            env.get_non_empty(USERNAME_VAR),
            env.get_non_empty(PASSWORD_VAR),
        ) else {
            return Err(NodeError::Broker {
                broker: broker.address(),
                detail: format!(
                    "{USERNAME_VAR} and {PASSWORD_VAR} must both be set; export this node's broker account in them"
                ),
            });
        };
        let password = SecretString::from(password.as_str());
        let mut options = MqttOptions::new(node_id, broker.host.clone(), broker.port);
        options
            .set_credentials(user.as_str(), password.expose_secret())
            .set_keep_alive(Duration::from_secs(30))
            // Like the published node: a clean session only on the first connection, kept
            // by the broker across short outages so queued commands are delivered.
            .set_clean_start(true)
            .set_session_expiry_interval(Some(SESSION_EXPIRY_SECS));
        if let Some(tls) = tls_for(broker, config, env)? {
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.client_config_without_alpn()),
            ));
        }
        let (client, mut events) = AsyncClient::new(options, 64);
        let (state_tx, state) = watch::channel(LinkState::Connecting);
        let topics = broker.topics.clone();
        let address = broker.address();
        let sub = client.clone();
        let task = tokio::spawn(async move {
            let mut failures: u32 = 0;
            let mut refusals: u32 = 0;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        // Later connections resume the broker's session.
                        events.options.set_clean_start(false);
                        if failures > 0 {
                            tracing::info!(broker = %address, "MQTT broker reachable again");
                        }
                        failures = 0;
                        refusals = 0;
                        for topic in &topics {
                            if let Err(e) = sub.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                                tracing::warn!(topic = %topic, error = %e, "cannot subscribe");
                            }
                        }
                        state_tx.send_replace(LinkState::Connected);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let topic = String::from_utf8_lossy(&p.topic);
                        let command = topic.rsplit('/').next().unwrap_or_default();
                        if command == "collect_information" {
                            let what = String::from_utf8_lossy(&p.payload).into_owned();
                            // Bounded: a flood on the command topic costs a few dropped
                            // requests, never unbounded memory or gRPC calls.
                            if requests_tx.try_send(what).is_err() {
                                tracing::debug!("collect_information request dropped: queue full");
                            }
                        } else {
                            tracing::warn!(command, "command not supported by this node; ignored");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let refused = matches!(
                            e,
                            ConnectionError::ConnectionRefused(
                                ConnectReturnCode::BadUserNamePassword
                                    | ConnectReturnCode::NotAuthorized
                                    | ConnectReturnCode::BadAuthenticationMethod
                            )
                        );
                        if refused {
                            refusals += 1;
                            if refusals >= MAX_AUTH_REFUSALS {
                                state_tx.send_replace(LinkState::Refused(format!(
                                    "the broker refused the credentials {refusals} times ({e}); set {USERNAME_VAR} and {PASSWORD_VAR} to this node's broker account"
                                )));
                                return;
                            }
                        } else if matches!(
                            e,
                            ConnectionError::ConnectionRefused(
                                ConnectReturnCode::ClientIdentifierNotValid
                                    | ConnectReturnCode::BadClientId
                            )
                        ) {
                            state_tx.send_replace(LinkState::Refused(format!(
                                "the broker refused the node id as client id ({e}); allow client ids of at least 24 characters in the broker"
                            )));
                            return;
                        }
                        failures = failures.saturating_add(1);
                        if failures == 1 || failures.is_power_of_two() {
                            tracing::warn!(broker = %address, failures, error = %e, "MQTT broker unreachable; retrying");
                        }
                        state_tx.send_replace(LinkState::Connecting);
                        tokio::time::sleep(backoff(failures)).await;
                    }
                }
            }
        });
        Ok(Link {
            broker: broker.clone(),
            client,
            state,
            task,
        })
    }

    /// The broker this link connects to.
    pub(crate) fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Publishes one heartbeat with `token`.
    ///
    /// # Errors
    /// [`NodeError::Unavailable`] while not connected (retried by the agent),
    /// [`NodeError::Broker`] once the broker refused the credentials for good.
    pub(crate) fn heartbeat(&self, token: &SecretString) -> Result<(), NodeError> {
        match &*self.state.borrow() {
            LinkState::Connected => {}
            LinkState::Connecting => {
                return Err(NodeError::Unavailable {
                    endpoint: self.broker.address(),
                    detail: "not connected to the MQTT broker".into(),
                });
            }
            LinkState::Refused(detail) => {
                return Err(NodeError::Broker {
                    broker: self.broker.address(),
                    detail: detail.clone(),
                });
            }
        }
        let payload = MqMetricsSnapshot {
            token: token.expose_secret().to_owned(),
            snapshot: Some(MetricsSnapshot::default()),
        }
        .encode_to_vec();
        self.client
            .try_publish(HEARTBEAT_TOPIC, QoS::AtMostOnce, false, payload)
            .map_err(|e| NodeError::Unavailable {
                endpoint: self.broker.address(),
                detail: format!("cannot publish the heartbeat: {e}"),
            })
    }

    /// Publishes DISCONNECTED and disconnects, waiting at most `limit`.
    pub(crate) async fn shutdown(mut self, limit: Duration) {
        let payload = NodeStatus {
            status: NodeStatusEnum::Disconnected as i32,
            ..NodeStatus::default()
        }
        .encode_to_vec();
        if *self.state.borrow() == LinkState::Connected {
            let _ = self
                .client
                .try_publish(STATUS_TOPIC, QoS::AtLeastOnce, false, payload);
            let _ = self.client.try_disconnect();
            let _ = tokio::time::timeout(limit, &mut self.task).await;
        }
        self.task.abort();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}
