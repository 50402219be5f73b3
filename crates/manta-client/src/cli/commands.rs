//! What each `manta` command does, on top of [`crate::UserApi`] and manta-config.

use std::io::Write;
use std::time::{Duration, SystemTime};

use manta_config::{
    ClientConfig, ConfigDocument, ConfigError, CredentialSlot, CredentialStore, DEFAULT_PROFILE,
    KEYRING_SERVICE, MANTA_TOKEN, MantaHome, Profile, ResolvedToken, SelectedProfile,
    StoredCredential, TokenSource, place_name,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::Context;
use super::args::{
    ClusterCommand, Command, Global, LoginArgs, ProfileCommand, Store, SwarmCommand, TokenCommand,
};
use crate::api::{UserApi, UserApiBuilder};
use crate::error::{Error, Result};
use crate::types::{ModuleSpec, SwarmSpec, TaskSpec};

type Out<'a> = &'a mut dyn Write;

fn io_err(e: std::io::Error) -> Error {
    Error::Io {
        path: "standard output".into(),
        source: e,
    }
}

fn print_json(out: Out<'_>, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Setting {
        message: format!("cannot render JSON: {e}"),
    })?;
    writeln!(out, "{text}").map_err(io_err)
}

fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    // Our output types are plain structs of strings and numbers; serialization cannot fail.
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

pub(super) fn dispatch(cli: super::Cli, ctx: &mut Context<'_>, out: Out<'_>) -> Result<u8> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::Setting {
            message: "manta_client::cli::run cannot run inside a tokio runtime; call it from a plain thread".into(),
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Setting {
            message: format!("cannot start the runtime: {e}"),
        })?;
    let g = &cli.global;
    let done = match cli.command {
        Command::Completions { shell } => {
            // clap_complete panics when its writer fails (e.g. `| head` closed the pipe),
            // so the script is rendered first and written with the error kept.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut super::command(), "manta", &mut script);
            out.write_all(&script).map_err(io_err)
        }
        Command::Profile(p) => profile(p, g, ctx, out),
        // The only command whose success has degrees: scripts test its exit status.
        Command::Token(TokenCommand::Inspect { token }) => return inspect(token, g, ctx, out),
        Command::Login(args) => runtime.block_on(login(args, g, ctx, out)),
        command => runtime.block_on(connected(command, g, ctx, out)),
    };
    done.map(|()| super::EXIT_OK)
}

fn home(ctx: &Context<'_>) -> Result<MantaHome> {
    Ok(MantaHome::from_env(&ctx.env)?)
}

/// The selected profile with the command line's `--host`, `--port` and `--cert-folder`
/// applied, and the same profile as configured (whose address is where its stored
/// credential belongs).
fn select(g: &Global, ctx: &Context<'_>, home: &MantaHome) -> Result<(SelectedProfile, Profile)> {
    let config = ClientConfig::load(home, &ctx.env)?;
    let mut selected = config.select(g.profile.as_deref(), &ctx.env, &home.client_config())?;
    let configured = selected.profile.clone();
    if let Some(h) = &g.host {
        selected.profile.host.clone_from(h);
    }
    if let Some(p) = g.port {
        selected.profile.port = p;
    }
    if let Some(c) = &g.cert_folder {
        selected.profile.cert_folder = Some(c.clone());
    }
    Ok((selected, configured))
}

fn builder(g: &Global, selected: &SelectedProfile) -> UserApiBuilder {
    let mut b = UserApiBuilder::for_profile(&selected.profile)
        .timeout(Duration::from_secs(g.timeout.max(1)))
        .user_agent(format!("manta-cli/{}", env!("CARGO_PKG_VERSION")));
    // A person at a terminal sees that a silent manager is being waited for; scripts and
    // pipes get only the final error.
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        b = b.waiting_notice(Duration::from_secs(2), |line| eprintln!("{line}"));
    }
    // The built-in profile has no table to point at, so errors name only the address.
    if selected.name == "default" {
        b
    } else {
        b.profile_name(&selected.name)
    }
}

/// The command that signs in to `profile`, for messages.
fn login_command(profile: &str) -> String {
    if profile == DEFAULT_PROFILE {
        "manta login".to_owned()
    } else {
        format!("manta --profile {profile} login")
    }
}

/// The token for the selected profile through the one chain every command uses: the
/// profile's `token_env`, then `MANTA_TOKEN`, then what `manta login` stored for this
/// profile, and that only when the command talks to the address it came from.
fn lookup(
    ctx: &Context<'_>,
    home: &MantaHome,
    selected: &SelectedProfile,
    configured: &Profile,
) -> Result<ResolvedToken> {
    let mut lookup = manta_config::TokenLookup::new(&ctx.env, home);
    lookup.profile = Some(configured);
    lookup.profile_name = Some(&selected.name);
    let target = selected.profile.address();
    if target != configured.address() {
        lookup.address = Some(target);
    }
    lookup.store = Some(ctx.store);
    lookup.resolve().map_err(|e| match e {
        ConfigError::NoToken { tried, variable } => Error::NotSignedIn {
            profile: selected.name.clone(),
            tried: tried.join(", "),
            login: login_command(&selected.name),
            variable,
        },
        e => e.into(),
    })
}

/// An API for the selected profile, with where its token came from and, when `manta login`
/// stored the token, the slot and store that also hold the session refresh token.
struct Connection {
    api: UserApi,
    source: TokenSource,
    home: MantaHome,
    /// The selected profile's name.
    profile: String,
    /// Where manta stored the token; `None` for tokens from the environment, which manta
    /// never rewrites.
    store: Option<CredentialStore>,
    /// The profile's credential slot.
    slot: CredentialSlot,
    /// The manager address the stored credential belongs to (the one dialled).
    address: String,
    /// Whether a session refresh token was stored beside the token.
    session: bool,
}

/// The API for the selected profile with the token from the chain and, when the token was
/// stored by `manta login`, the session refresh token stored beside it.
fn connect(g: &Global, ctx: &Context<'_>) -> Result<Connection> {
    let home = home(ctx)?;
    let (selected, configured) = select(g, ctx, &home)?;
    let resolved = lookup(ctx, &home, &selected, &configured)?;
    let session = resolved.refresh_token.is_some();
    tracing::debug!(profile = %selected.name, source = %resolved.source, session, "using token");
    let mut b = builder(g, &selected).token(resolved.token);
    if let Some(refresh) = resolved.refresh_token {
        b = b.refresh_token(refresh);
    }
    Ok(Connection {
        api: b.build()?,
        source: resolved.source,
        home,
        slot: CredentialSlot::new(&selected.name),
        address: selected.profile.address(),
        profile: selected.name,
        store: resolved.stored_in,
        session,
    })
}

/// Stores a profile's credential (the access token and the session refresh token, or the
/// token alone, removing a refresh token left from an older session) in `kind`, all or
/// nothing; returns where it went.
fn store_session(
    kind: CredentialStore,
    token: &SecretString,
    refresh: Option<&SecretString>,
    ctx: &Context<'_>,
    conn_home: (&MantaHome, &CredentialSlot, &str),
) -> Result<String> {
    let (home, slot, address) = conn_home;
    manta_config::save_credential(home, Some(ctx.store), kind, slot, token, refresh, address)?;
    Ok(place_name(home, kind, slot))
}

/// Whether `token` is expired or due for renewal by the client's refresh policy (a
/// fraction of its lifetime gone, or within the margin before `exp`). Tokens without a
/// readable `exp` are never due.
fn renewal_due(token: &SecretString, config: &crate::RefreshConfig) -> bool {
    let Ok(seen) = manta_auth::inspect(token.expose_secret()) else {
        return false;
    };
    let Some(exp) = seen.claims.exp else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let iat = seen.claims.iat.unwrap_or(now);
    // No jitter: a command asks once, at its start, whether the token is due.
    let due = config.refresh_at_ms(iat.saturating_mul(1000), exp.saturating_mul(1000), 0.0);
    now.saturating_mul(1000) >= due
}

/// Renews the session with its refresh token (`RefreshSession`) and stores both new
/// tokens where the old ones were. A refused refresh token is removed and the user is
/// told to sign in again.
async fn renew_session(conn: &Connection, ctx: &Context<'_>) -> Result<SecretString> {
    let (api, home) = (&conn.api, &conn.home);
    let Some(kind) = conn.store else {
        return Err(Error::SessionEnded {
            message: "no session is stored for this token".into(),
        });
    };
    let place = place_name(home, kind, &conn.slot);
    let Some(refresh) = api.session_refresh_token() else {
        return Err(Error::SessionEnded {
            message: "no session refresh token is stored".into(),
        });
    };
    let at = (home, &conn.slot, conn.address.as_str());
    match api.refresh_token(&refresh).await {
        Ok(access) => {
            let rotated = api.session_refresh_token();
            store_session(kind, &access, rotated.as_ref(), ctx, at).map_err(|e| {
                Error::SessionNotStored {
                    place: place.clone(),
                    source: Box::new(e),
                }
            })?;
            tracing::info!(stored_in = %place, "session renewed");
            Ok(access)
        }
        Err(e @ (Error::Authentication { .. } | Error::TokenExpired { .. })) => {
            let reason = match &e {
                Error::Authentication { message } | Error::TokenExpired { message } => {
                    message.clone()
                }
                _ => String::new(),
            };
            // The access token stays (it may still work until it expires); the spent
            // refresh token goes.
            let removed = match store_session(kind, &api.token(), None, ctx, at) {
                Ok(_) => format!("the stored refresh token was removed from {place}"),
                Err(r) => {
                    format!("the stored refresh token could not be removed from {place}: {r}")
                }
            };
            Err(Error::SessionEnded {
                message: format!("the manager refused to renew it ({reason}); {removed}"),
            })
        }
        Err(e) => Err(e),
    }
}

fn read_line(ctx: &mut Context<'_>, what: &str) -> Result<String> {
    let mut line = String::new();
    ctx.stdin.read_line(&mut line).map_err(|source| Error::Io {
        path: "standard input".into(),
        source,
    })?;
    let value = line.trim_end_matches(['\n', '\r']).to_owned();
    zeroize::Zeroize::zeroize(&mut line);
    if value.is_empty() {
        return Err(Error::Usage {
            message: format!("no {what} on standard input; pipe it to the command"),
        });
    }
    Ok(value)
}

/// Reads a line from `ctx.stdin` with the terminal's echo off (termios through rustix's safe
/// wrappers, instead of running `stty`), then puts the terminal's own settings back.
fn read_hidden(ctx: &mut Context<'_>, what: &str) -> Result<String> {
    #[cfg(unix)]
    {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        // Not a terminal after all (or no permission): read as is, as `stty` failing did.
        let saved = tcgetattr(&stdin).ok();
        if let Some(saved) = &saved {
            let mut quiet = saved.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            let _ = tcsetattr(&stdin, OptionalActions::Now, &quiet);
        }
        let line = read_line(ctx, what);
        if let Some(saved) = &saved {
            let _ = tcsetattr(&stdin, OptionalActions::Now, saved);
        }
        line
    }
    #[cfg(not(unix))]
    read_line(ctx, what)
}

/// Where `login` stores: the store asked for, else the keyring when a probe shows it works
/// in this process, else the credentials file (said in one line on standard error). An
/// explicit `--store keyring` that cannot work is refused before anything is sent.
fn login_store(asked: Option<Store>, ctx: &Context<'_>) -> Result<CredentialStore> {
    match asked {
        Some(Store::File) => Ok(CredentialStore::File),
        Some(Store::Keyring) => match manta_config::probe_keyring(ctx.store) {
            Ok(()) => Ok(CredentialStore::Keyring),
            Err(e) => Err(Error::Usage {
                message: format!(
                    "{e}; sign in with `--store file` to keep the credential in the credentials file (mode 0600)"
                ),
            }),
        },
        None => match manta_config::probe_keyring(ctx.store) {
            Ok(()) => Ok(CredentialStore::Keyring),
            Err(e) => {
                eprintln!(
                    "note: {e}; storing the credential in the credentials file (mode 0600) instead"
                );
                tracing::info!(error = %e, "keyring unusable, using the credentials file");
                Ok(CredentialStore::File)
            }
        },
    }
}

async fn login(args: LoginArgs, g: &Global, ctx: &mut Context<'_>, out: Out<'_>) -> Result<()> {
    let home = home(ctx)?;
    let (selected, _) = select(g, ctx, &home)?;
    let kind = login_store(args.store, ctx)?;
    let username = match args.username {
        Some(u) => u,
        None if args.password_stdin => {
            return Err(Error::Usage {
                message: "with --password-stdin, give the user name with --username".into(),
            });
        }
        None => {
            eprint!("username: ");
            read_line(ctx, "user name")?
        }
    };
    let password = if args.password_stdin {
        SecretString::from(read_line(ctx, "password")?)
    } else if ctx.stdin_is_terminal {
        eprint!("password for {username}: ");
        let p = read_hidden(ctx, "password");
        eprintln!();
        SecretString::from(p?)
    } else {
        return Err(Error::Usage {
            message:
                "standard input is not a terminal; pass --password-stdin and pipe the password"
                    .into(),
        });
    };
    let api = builder(g, &selected).sign_in(&username, &password).await?;
    let refresh = api.session_refresh_token();
    let slot = CredentialSlot::new(&selected.name);
    let address = selected.profile.address();
    let place = store_session(
        kind,
        &api.token(),
        refresh.as_ref(),
        ctx,
        (&home, &slot, &address),
    )?;
    let stored = if refresh.is_some() {
        "token and session refresh token"
    } else {
        "token (this manager has no sessions: sign in again when it expires)"
    };
    if g.json {
        print_json(
            out,
            &json!({"username": username, "profile": selected.name, "address": address,
                    "stored_in": place, "session_renewable": refresh.is_some()}),
        )
    } else {
        writeln!(
            out,
            "signed in as {username} ({address}, profile {}); {stored} stored in {place}",
            selected.name
        )
        .map_err(io_err)
    }
}

/// Unix seconds now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `2026-11-22T10:00:00Z` for unix seconds (UTC). A time past the year 9999, which only a
/// forged or broken token claims, is said as such rather than formatted.
fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "after 9999-12-31T23:59:59Z".to_owned())
}

/// A duration for people: `45s`, `59m`, `3h12m`, `29d4h`.
fn human(s: u64) -> String {
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn when(secs: Option<u64>) -> String {
    secs.map_or_else(|| "-".to_owned(), |s| format!("{} (unix {s})", rfc3339(s)))
}

fn left(exp: Option<u64>) -> String {
    let Some(exp) = exp else {
        return "never".into();
    };
    let now = unix_now();
    if exp <= now {
        return "expired".into();
    }
    human(exp - now)
}

async fn connected(
    command: Command,
    g: &Global,
    ctx: &mut Context<'_>,
    out: Out<'_>,
) -> Result<()> {
    if matches!(command, Command::Logout) {
        return logout(g, ctx, out).await;
    }
    let conn = connect(g, ctx)?;
    let logout = false;
    let explicit_refresh = matches!(command, Command::Token(TokenCommand::Refresh));
    // A stored session whose access token expired (or soon will) is renewed before the
    // call, so a user who signed in once keeps working until the session ends. Logout
    // revokes the session instead, and `token refresh` renews it itself.
    if conn.store.is_some()
        && conn.session
        && !logout
        && !explicit_refresh
        && renewal_due(&conn.api.token(), &crate::RefreshConfig::default())
    {
        renew_session(&conn, ctx).await?;
    }
    let before = conn.api.refresh_count();
    let result = run_connected(command, &conn, g, ctx, out).await;
    // A token renewed automatically during the command replaces the stored one, so the next
    // command does not renew it again. A rotated session refresh token must be stored: the
    // old one no longer works.
    if conn.api.refresh_count() > before
        && !logout
        && !explicit_refresh
        && let Some(store) = conn.store
    {
        let refresh = conn.api.session_refresh_token();
        let at = (&conn.home, &conn.slot, conn.address.as_str());
        let stored = store_session(store, &conn.api.token(), refresh.as_ref(), ctx, at);
        if let Err(e) = stored {
            if refresh.is_some() && result.is_ok() {
                return Err(Error::SessionNotStored {
                    place: place_name(&conn.home, store, &conn.slot),
                    source: Box::new(e),
                });
            }
            tracing::warn!(error = %e, "could not store the renewed token");
        }
    }
    result
}

async fn run_connected(
    command: Command,
    conn: &Connection,
    g: &Global,
    ctx: &mut Context<'_>,
    out: Out<'_>,
) -> Result<()> {
    let (api, source, home) = (&conn.api, &conn.source, &conn.home);
    match command {
        // Handled by `logout` before connecting.
        Command::Logout => Ok(()),
        Command::Whoami => {
            let user = api.get_user().await?;
            let exp = manta_auth::inspect(api.token().expose_secret())
                .ok()
                .and_then(|i| i.claims.exp);
            // Where the session refresh token is, never the token itself.
            let session_in = match conn.store {
                Some(CredentialStore::Keyring) if api.session_refresh_token().is_some() => Some(
                    format!("keyring {KEYRING_SERVICE}/{}", conn.slot.refresh_entry()),
                ),
                Some(CredentialStore::File) if api.session_refresh_token().is_some() => {
                    Some(format!(
                        "{} [{}] refresh_token",
                        home.credentials().display(),
                        conn.slot.section()
                    ))
                }
                _ => None,
            };
            if g.json {
                let mut v = to_json(&user);
                v["profile"] = json!(conn.profile);
                v["manager"] = json!(conn.address);
                v["token_source"] = json!(source.to_string());
                v["token_managed_by_manta"] = json!(conn.store.is_some());
                v["token_expires_at"] = json!(exp);
                v["session_renewable"] = json!(session_in.is_some());
                v["session_refresh_token_in"] = json!(session_in);
                print_json(out, &v)
            } else {
                let session = match &session_in {
                    Some(place) => format!(
                        "renewable: the token is renewed automatically with the refresh token in {place} until the session ends"
                    ),
                    None => "none stored: sign in again (`manta login`) when the token expires"
                        .to_owned(),
                };
                writeln!(
                    out,
                    "{} (id {})\nscopes: {}\nprofile: {} ({})\ntoken: {source}, expires in {}\nsession: {session}",
                    user.username,
                    user.id,
                    if user.scopes.is_empty() {
                        "-".to_owned()
                    } else {
                        user.scopes.join(" ")
                    },
                    conn.profile,
                    conn.address,
                    left(exp),
                )
                .map_err(io_err)
            }
        }
        Command::Token(t) => token(t, conn, g, ctx, out).await,
        Command::Cluster(c) => cluster(c, api, g, out).await,
        Command::Swarm(s) => swarm(s, api, g, out).await,
        Command::Login(_) | Command::Profile(_) | Command::Completions { .. } => Ok(()),
    }
}

async fn token(
    t: TokenCommand,
    conn: &Connection,
    g: &Global,
    ctx: &Context<'_>,
    out: Out<'_>,
) -> Result<()> {
    let (api, source, home) = (&conn.api, &conn.source, &conn.home);
    match t {
        TokenCommand::Refresh => {
            // A stored session is renewed with its refresh token, which also works after
            // the access token expired.
            if let (Some(store), true) = (conn.store, conn.session) {
                let new = renew_session(conn, ctx).await?;
                let exp = manta_auth::inspect(new.expose_secret())
                    .ok()
                    .and_then(|i| i.claims.exp);
                if g.json {
                    return print_json(
                        out,
                        &json!({"renewed": "session", "token_expires_at": time_json(exp),
                                "stored_in": place_name(home, store, &conn.slot), "token": null}),
                    );
                }
                return writeln!(
                    out,
                    "session renewed; token expires in {}; token and session refresh token stored in {}",
                    left(exp),
                    place_name(home, store, &conn.slot)
                )
                .map_err(io_err);
            }
            let new = api.refresh_now().await?;
            let exp = manta_auth::inspect(new.expose_secret())
                .ok()
                .and_then(|i| i.claims.exp);
            let _ = source;
            let at = (home, &conn.slot, conn.address.as_str());
            let stored = match conn.store {
                Some(kind) => Some(store_session(kind, &new, None, ctx, at)?),
                None => None,
            };
            if g.json {
                // With a token from the environment the new one is printed for the caller
                // to put there, as without --json.
                let token = stored.is_none().then(|| new.expose_secret().to_owned());
                return print_json(
                    out,
                    &json!({"renewed": "token", "token_expires_at": time_json(exp),
                            "stored_in": stored, "token": token}),
                );
            }
            match stored {
                Some(place) => writeln!(
                    out,
                    "token refreshed; expires in {}; stored in {place}",
                    left(exp)
                )
                .map_err(io_err),
                // The old token came from the environment: print the new one for the caller
                // to put there (the caller asked for it; it is not logged).
                None => writeln!(out, "{}", new.expose_secret()).map_err(io_err),
            }
        }
        TokenCommand::Create { name, scopes, ttl } => {
            let scopes: Vec<String> = scopes
                .iter()
                .flat_map(|s| s.split_whitespace())
                .map(str::to_owned)
                .collect();
            manta_auth::check_typed_scopes(&scopes).map_err(|e| Error::Setting {
                message: format!("--scopes: {e}"),
            })?;
            let created = api
                .create_api_token(&name, &scopes, ttl.map(Duration::from_secs))
                .await?;
            if g.json {
                let mut v = to_json(&created.info);
                v["token"] = json!(created.token.expose_secret());
                print_json(out, &v)
            } else {
                writeln!(out, "{}", created.token.expose_secret()).map_err(io_err)?;
                eprintln!(
                    "created API token {} ({}); it is shown only once, store it now",
                    created.info.id, created.info.name
                );
                Ok(())
            }
        }
        TokenCommand::List { all } => {
            let list = api.list_api_tokens(all).await?;
            if g.json {
                return print_json(out, &to_json(&list));
            }
            writeln!(
                out,
                "{:<34} {:<20} {:<10} {:<8} SCOPES",
                "ID", "NAME", "EXPIRES", "STATE"
            )
            .map_err(io_err)?;
            for t in list {
                let state = if t.revoked { "revoked" } else { "active" };
                writeln!(
                    out,
                    "{:<34} {:<20} {:<10} {:<8} {}",
                    t.id,
                    t.name,
                    left(t.expires_at),
                    state,
                    t.scopes.join(" ")
                )
                .map_err(io_err)?;
            }
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            api.revoke_api_token(&id).await?;
            if g.json {
                return print_json(out, &json!({"revoked": true, "id": id}));
            }
            writeln!(out, "revoked API token {id}").map_err(io_err)
        }
        TokenCommand::Inspect { .. } => Ok(()),
    }
}

/// Ends what `manta login` stored for the selected profile: revokes its session on the
/// manager it came from and removes it from the credentials file and the keyring. A token
/// from an environment variable is never revoked or removed: the user handed it to the
/// shell, not to manta.
async fn logout(g: &Global, ctx: &mut Context<'_>, out: Out<'_>) -> Result<()> {
    let home = home(ctx)?;
    let (selected, configured) = select(g, ctx, &home)?;
    let name = &selected.name;
    let slot = CredentialSlot::new(name);
    let variables = [configured.token_env.as_deref(), Some(MANTA_TOKEN)];
    let untouched_variable = variables
        .into_iter()
        .flatten()
        .find(|v| ctx.env.get_non_empty(v).is_some());
    let untouched = untouched_variable
        .map(|v| {
            format!(
                "; the token in environment variable {v} is not managed by manta and was left as is"
            )
        })
        .unwrap_or_default();
    let stored = match manta_config::read_file_credential(&home, &slot, false)? {
        Some(c) => Some(c),
        // A keyring that does not work here holds nothing this process could end.
        None => manta_config::read_keyring_credential(ctx.store, &slot).unwrap_or(None),
    };
    let Some(cred) = stored else {
        if g.json {
            return print_json(
                out,
                &json!({"logged_out": false, "profile": name, "manager": null,
                        "removed_from": null, "removed": [],
                        "token_variable_left": untouched_variable}),
            );
        }
        return writeln!(
            out,
            "not logged out: nothing is stored for profile {name}{untouched}"
        )
        .map_err(io_err);
    };
    let came_from = cred.address.clone().unwrap_or_else(|| configured.address());
    let target = selected.profile.address();
    if came_from != target {
        return Err(Error::Usage {
            message: format!(
                "the credential stored for profile {name} came from {came_from}, not {target}; run `manta logout` without --host and --port to end it there"
            ),
        });
    }
    let api = builder(g, &selected)
        .token(cred.token.clone())
        .no_auto_refresh()
        .build()?;
    // With a stored session, RevokeSession ends it with its refresh token, which works
    // even after the access token expired; an unknown refresh token falls back to the
    // published Logout with the access token.
    let server = match &cred.refresh_token {
        Some(r) => match api.revoke_session(r).await {
            Err(e) if e.is_auth() => api.logout().await.map(|_| ()),
            other => other,
        },
        None => api.logout().await.map(|_| ()),
    };
    manta_config::remove_file_credential(&home, &slot)?;
    // Entries of an unusable keyring cannot be read either, so they do not linger.
    let _ = manta_config::remove_keyring_credential(ctx.store, &slot);
    let what = if cred.refresh_token.is_some() {
        "the token and the session refresh token"
    } else {
        "the token"
    };
    match server {
        Ok(()) | Err(Error::Authentication { .. } | Error::TokenExpired { .. }) if g.json => {
            let removed: &[&str] = if cred.refresh_token.is_some() {
                &["token", "refresh_token"]
            } else {
                &["token"]
            };
            print_json(
                out,
                &json!({"logged_out": true, "profile": name, "manager": target,
                        "removed_from": cred.source.to_string(), "removed": removed,
                        "token_variable_left": untouched_variable}),
            )
        }
        Ok(()) | Err(Error::Authentication { .. } | Error::TokenExpired { .. }) => writeln!(
            out,
            "logged out of profile {name} ({target}); removed {what} from {}{untouched}",
            cred.source
        )
        .map_err(io_err),
        Err(e) => Err(e),
    }
}

/// Whether a token is usable now, by its `nbf` and `exp` claims (not verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenState {
    /// Valid; seconds left (`None`: no expiry).
    Valid(Option<u64>),
    /// Expired this many seconds ago.
    Expired(u64),
    /// Valid only in this many seconds.
    NotYetValid(u64),
}

fn token_state(nbf: Option<u64>, exp: Option<u64>, now: u64) -> TokenState {
    match (nbf, exp) {
        (_, Some(exp)) if exp <= now => TokenState::Expired(now - exp),
        (Some(nbf), _) if nbf > now => TokenState::NotYetValid(nbf - now),
        (_, exp) => TokenState::Valid(exp.map(|e| e - now)),
    }
}

impl TokenState {
    fn describe(self) -> String {
        match self {
            TokenState::Valid(None) => "valid, no expiry".to_owned(),
            TokenState::Valid(Some(left)) => format!("valid, expires in {}", human(left)),
            TokenState::Expired(ago) => format!("expired {} ago", human(ago)),
            TokenState::NotYetValid(wait) => format!("not yet valid, valid in {}", human(wait)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            TokenState::Valid(_) => "valid",
            TokenState::Expired(_) => "expired",
            TokenState::NotYetValid(_) => "not_yet_valid",
        }
    }

    /// The exit status of `manta token inspect`, for scripts.
    fn exit_code(self) -> u8 {
        match self {
            TokenState::Valid(_) => super::EXIT_OK,
            TokenState::Expired(_) => super::EXIT_TOKEN_EXPIRED,
            TokenState::NotYetValid(_) => super::EXIT_TOKEN_NOT_YET_VALID,
        }
    }
}

fn time_json(secs: Option<u64>) -> serde_json::Value {
    secs.map_or(
        serde_json::Value::Null,
        |s| json!({"unix": s, "rfc3339": rfc3339(s)}),
    )
}

fn inspect(token: Option<String>, g: &Global, ctx: &mut Context<'_>, out: Out<'_>) -> Result<u8> {
    let (token, source) = match token.as_deref() {
        Some("-") => (
            SecretString::from(read_line(ctx, "token")?.trim().to_owned()),
            "standard input".to_owned(),
        ),
        Some(_) => {
            return Err(Error::Usage {
                message: "a token on the command line shows in `ps` and in shell history; pipe it with `manta token inspect -` instead".into(),
            });
        }
        None => {
            let home = home(ctx)?;
            let (selected, configured) = select(g, ctx, &home)?;
            let r = lookup(ctx, &home, &selected, &configured)?;
            (r.token, r.source.to_string())
        }
    };
    let seen = manta_auth::inspect(token.expose_secret()).map_err(Error::Token)?;
    let c = &seen.claims;
    let state = token_state(c.nbf, c.exp, unix_now());
    let scopes = seen.scopes().map_or_else(
        |_| c.permissions.clone(),
        |s| s.scopes().iter().map(ToString::to_string).collect(),
    );
    if g.json {
        print_json(
            out,
            &json!({
                "source": source,
                "verified": false,
                "header": {"alg": seen.header.alg.to_string(), "kid": seen.header.kid, "typ": seen.header.typ},
                "claims": to_json(c),
                "kind": c.kind.map(|k| k.to_string()),
                "scopes": scopes,
                "issued_at": time_json(c.iat),
                "not_before": time_json(c.nbf),
                "expires_at": time_json(c.exp),
                "time_left": left(c.exp),
                "status": state.name(),
                "valid": matches!(state, TokenState::Valid(_)),
            }),
        )?;
        return Ok(state.exit_code());
    }
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let not_before = c
        .nbf
        .map(|n| format!("not before: {}\n", when(Some(n))))
        .unwrap_or_default();
    writeln!(
        out,
        "token from {source} (NOT verified: decoded only)\n\
         header: alg={} kid={} typ={}\n\
         kind:    {}\nsubject: {}\nissuer:  {}\naudience: {}\nid (jti): {}\n\
         issued:  {}\n{not_before}expires: {}\ntime left: {}\nstatus:  {}\nscopes:  {}",
        seen.header.alg,
        opt(&seen.header.kid),
        opt(&seen.header.typ),
        c.kind.map_or_else(|| "-".to_owned(), |k| k.to_string()),
        opt(&c.sub),
        opt(&c.iss),
        if c.aud.0.is_empty() {
            "-".to_owned()
        } else {
            c.aud.0.join(" ")
        },
        opt(&c.jti),
        when(c.iat),
        when(c.exp),
        left(c.exp),
        state.describe(),
        if scopes.is_empty() {
            "-".to_owned()
        } else {
            scopes.join(" ")
        },
    )
    .map_err(io_err)?;
    Ok(state.exit_code())
}

/// What `manta login` stored for `profile`, if anything (the file first, then the keyring;
/// a keyring that does not work here holds nothing).
fn stored_credential(
    ctx: &Context<'_>,
    home: &MantaHome,
    profile: &str,
) -> Result<Option<StoredCredential>> {
    let slot = CredentialSlot::new(profile);
    Ok(
        match manta_config::read_file_credential(home, &slot, false)? {
            Some(c) => Some(c),
            None => manta_config::read_keyring_credential(ctx.store, &slot).unwrap_or(None),
        },
    )
}

fn token_exp(token: &SecretString) -> Option<u64> {
    manta_auth::inspect(token.expose_secret())
        .ok()
        .and_then(|i| i.claims.exp)
}

fn credential_json(c: Option<&StoredCredential>) -> serde_json::Value {
    c.map_or(serde_json::Value::Null, |c| {
        json!({
            "stored_in": c.source.to_string(),
            "address": c.address,
            "token_expires_at": time_json(token_exp(&c.token)),
            "session_renewable": c.refresh_token.is_some(),
        })
    })
}

fn credential_text(c: Option<&StoredCredential>) -> String {
    let Some(c) = c else {
        return "not signed in".to_owned();
    };
    let store = match c.store {
        CredentialStore::Keyring => "keyring",
        _ => "file",
    };
    let until = match token_exp(&c.token) {
        Some(exp) if exp > unix_now() => format!("token until {}", rfc3339(exp)),
        Some(exp) => format!("token expired {}", rfc3339(exp)),
        None => "token without expiry".to_owned(),
    };
    let session = if c.refresh_token.is_some() {
        ", renewable"
    } else {
        ""
    };
    format!("signed in ({store}), {until}{session}")
}

fn connection_kind(p: &Profile) -> String {
    match (&p.cert_folder, p.port) {
        // The folder's files decide the kind, as `ClientTls::from_folder` does; a folder that
        // is not usable yet still says which it will be once complete.
        (Some(f), _) if f.join(manta_tls::CLIENT_CERT_FILE).exists() => {
            format!("mTLS {}", f.display())
        }
        (Some(f), _) => format!("TLS {}", f.display()),
        (None, 443) => "TLS".to_owned(),
        (None, _) => "plaintext".to_owned(),
    }
}

/// Profile names become TOML keys and INI sections; keep them plain.
fn check_profile_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::Usage {
            message: format!("`{name}` is not a profile name; use letters, digits, `-` and `_`"),
        });
    }
    Ok(())
}

fn open_client_config(path: &std::path::Path) -> Result<ConfigDocument> {
    match ConfigDocument::open(path) {
        Ok(d) => Ok(d),
        Err(ConfigError::NotFound { .. }) => Ok(ConfigDocument::parse("")?),
        Err(e) => Err(e.into()),
    }
}

fn profile(p: ProfileCommand, g: &Global, ctx: &Context<'_>, out: Out<'_>) -> Result<()> {
    let home = home(ctx)?;
    let path = home.client_config();
    let config = ClientConfig::load(&home, &ctx.env)?;
    match p {
        ProfileCommand::List => {
            let current = config
                .select(g.profile.as_deref(), &ctx.env, &path)
                .ok()
                .map(|s| s.name);
            if g.json {
                let mut list = Vec::with_capacity(config.profiles.len());
                for (name, p) in &config.profiles {
                    let cred = stored_credential(ctx, &home, name)?;
                    list.push(json!({"name": name, "host": p.host, "port": p.port, "token_env": p.token_variable(),
                               "cert_folder": p.cert_folder, "current": current.as_deref() == Some(name),
                               "credential": credential_json(cred.as_ref())}));
                }
                return print_json(out, &json!(list));
            }
            if config.profiles.is_empty() {
                let cred = stored_credential(ctx, &home, DEFAULT_PROFILE)?;
                writeln!(out, "no profiles in {}; the built-in default is localhost:50052 ({}); add one with `manta profile add NAME --host H --port P`", path.display(), credential_text(cred.as_ref()))
                    .map_err(io_err)?;
                return Ok(());
            }
            let mut rows = Vec::with_capacity(config.profiles.len());
            for (name, p) in &config.profiles {
                let mark = if current.as_deref() == Some(name) {
                    "*"
                } else {
                    " "
                };
                let cred = stored_credential(ctx, &home, name)?;
                rows.push([
                    format!("{mark} {}", printable(name)),
                    format!("{}:{}", printable(&p.host), p.port),
                    connection_kind(p),
                    format!(
                        "token from ${}; {}",
                        p.token_variable(),
                        credential_text(cred.as_ref())
                    ),
                ]);
            }
            // Columns as wide as their widest cell, so long host names keep them aligned.
            let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
            let (w0, w1, w2) = (width(0), width(1), width(2));
            for [name, address, connection, token] in &rows {
                writeln!(
                    out,
                    "{name:<w0$}  {address:<w1$}  {connection:<w2$}  {token}"
                )
                .map_err(io_err)?;
            }
            Ok(())
        }
        ProfileCommand::Use { name } => {
            // Refuses unknown names with the list of available ones and a suggestion.
            config.select(Some(&name), &ctx.env, &path)?;
            let mut doc = open_client_config(&path)?;
            doc.set_str("default_profile", &name)?;
            doc.save(&path)?;
            if g.json {
                return print_json(
                    out,
                    &json!({"default_profile": name, "config": path.display().to_string()}),
                );
            }
            writeln!(out, "default profile is now {name} ({})", path.display()).map_err(io_err)
        }
        ProfileCommand::Add { name, token_env } => {
            check_profile_name(&name)?;
            if config.profiles.contains_key(&name) {
                return Err(Error::Usage {
                    message: format!(
                        "profile {name} already exists in {}; remove it first (`manta profile remove {name}`)",
                        path.display()
                    ),
                });
            }
            let Some(host) = &g.host else {
                return Err(Error::Usage {
                    message:
                        "a new profile needs its manager: give --host (and --port, default 50052)"
                            .into(),
                });
            };
            let mut doc = open_client_config(&path)?;
            let key = |k: &str| format!("profiles.{name}.{k}");
            doc.set_str(&key("host"), host)?;
            doc.set_integer(&key("port"), i64::from(g.port.unwrap_or(50052)))?;
            if let Some(v) = &token_env {
                doc.set_str(&key("token_env"), v)?;
            }
            if let Some(c) = &g.cert_folder {
                doc.set_str(&key("cert_folder"), &c.display().to_string())?;
            }
            doc.save(&path)?;
            // Loading it back proves the file is still one `manta` reads.
            let added =
                ClientConfig::load(&home, &ctx.env)?.select(Some(&name), &ctx.env, &path)?;
            if g.json {
                return print_json(
                    out,
                    &json!({"added": name, "address": added.profile.address(),
                            "connection": connection_kind(&added.profile),
                            "config": path.display().to_string(), "login": login_command(&name)}),
                );
            }
            writeln!(
                out,
                "added profile {name} ({}, {}) to {}; sign in with `{}`",
                added.profile.address(),
                connection_kind(&added.profile),
                path.display(),
                login_command(&name)
            )
            .map_err(io_err)
        }
        ProfileCommand::Remove { name } => {
            config.select(Some(&name), &ctx.env, &path)?;
            if stored_credential(ctx, &home, &name)?.is_some() {
                return Err(Error::Usage {
                    message: format!(
                        "profile {name} holds a stored credential; end it first with `manta --profile {name} logout`"
                    ),
                });
            }
            let mut doc = open_client_config(&path)?;
            doc.remove(&format!("profiles.{name}"));
            let was_default = config.default_profile.as_deref() == Some(name.as_str());
            if was_default {
                doc.remove("default_profile");
            }
            doc.save(&path)?;
            if g.json {
                return print_json(
                    out,
                    &json!({"removed": name, "config": path.display().to_string(),
                            "default_profile_removed": was_default}),
                );
            }
            let note = if was_default {
                "; it was the default profile, so default_profile was removed too"
            } else {
                ""
            };
            writeln!(out, "removed profile {name} from {}{note}", path.display()).map_err(io_err)
        }
        ProfileCommand::Show { name } => {
            let selected =
                config.select(name.as_deref().or(g.profile.as_deref()), &ctx.env, &path)?;
            let p = &selected.profile;
            let cred = stored_credential(ctx, &home, &selected.name)?;
            let env_token = [p.token_env.as_deref(), Some(MANTA_TOKEN)]
                .into_iter()
                .flatten()
                .find(|v| ctx.env.get_non_empty(v).is_some());
            if g.json {
                return print_json(
                    out,
                    &json!({"name": selected.name, "host": p.host, "port": p.port,
                            "token_env": p.token_env, "cert_folder": p.cert_folder,
                            "connection": connection_kind(p),
                            "token_variable_set": env_token,
                            "credential": credential_json(cred.as_ref())}),
                );
            }
            let variables = match &p.token_env {
                Some(v) => format!("${v}, then $MANTA_TOKEN"),
                None => "$MANTA_TOKEN".to_owned(),
            };
            let in_use = match (env_token, &cred) {
                (Some(v), _) => format!("${v} (set: it is used before any stored credential)"),
                (None, Some(_)) => "the stored credential (no variable is set)".to_owned(),
                (None, None) => "none (no variable is set and nothing is stored)".to_owned(),
            };
            let stored = match &cred {
                Some(c) => format!(
                    "{} in {}, for {}",
                    credential_text(Some(c)),
                    c.source,
                    c.address.clone().unwrap_or_else(|| p.address())
                ),
                None => format!("none; sign in with `{}`", login_command(&selected.name)),
            };
            writeln!(
                out,
                "profile: {}\nmanager: {} ({})\ntoken variables: {variables}\ntoken in use: {in_use}\nstored credential: {stored}",
                selected.name,
                p.address(),
                connection_kind(p),
            )
            .map_err(io_err)
        }
    }
}

/// The cluster `given` names: the one with that id or, when no cluster has it as its id,
/// the only cluster the caller can see with that name. Names are not unique, so a name
/// that several clusters share is refused with their ids.
async fn resolve_cluster(api: &UserApi, given: &str) -> Result<crate::types::Cluster> {
    let given = given.trim();
    match api.get_cluster(given).await {
        Ok(c) => return Ok(c),
        // The manager answers NOT_FOUND (or INVALID_ARGUMENT for something that cannot be
        // an id) for an id it does not know: `given` may be a name.
        Err(Error::NotFound { .. } | Error::Usage { .. }) => {}
        Err(e) => return Err(e),
    }
    let mut named = Vec::new();
    for id in api.list_clusters().await? {
        match api.get_cluster(&id).await {
            Ok(c) if c.name == given => named.push(c),
            // Removed since it was listed.
            Ok(_) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    match named.len() {
        0 => Err(Error::UnknownCluster {
            given: given.to_owned(),
        }),
        1 => Ok(named.remove(0)),
        _ => Err(Error::AmbiguousCluster {
            name: given.to_owned(),
            ids: named.into_iter().map(|c| c.id).collect(),
        }),
    }
}

/// The id of the cluster `given` names (see [`resolve_cluster`]). A caller who may deploy
/// but not read clusters cannot look names up: then `given` is passed on as an id, and the
/// manager decides.
async fn cluster_id(api: &UserApi, given: &str) -> Result<String> {
    match resolve_cluster(api, given).await {
        Ok(c) => Ok(c.id),
        Err(Error::PermissionDenied { .. }) => Ok(given.trim().to_owned()),
        Err(e) => Err(e),
    }
}

async fn cluster(c: ClusterCommand, api: &UserApi, g: &Global, out: Out<'_>) -> Result<()> {
    match c {
        ClusterCommand::List => {
            let mut clusters = Vec::new();
            for id in api.list_clusters().await? {
                match api.get_cluster(&id).await {
                    Ok(c) => clusters.push(c),
                    // Removed since it was listed.
                    Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            // The manager lists ids in no useful order; people look clusters up by name.
            clusters.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
            if g.json {
                return print_json(out, &to_json(&clusters));
            }
            for c in &clusters {
                writeln!(out, "{}  {:<8} {}", c.id, c.status, printable(&c.name))
                    .map_err(io_err)?;
            }
            Ok(())
        }
        ClusterCommand::Get { cluster } => {
            show_cluster(out, g, &resolve_cluster(api, &cluster).await?)
        }
        ClusterCommand::Start { cluster } => {
            let id = resolve_cluster(api, &cluster).await?.id;
            show_cluster(out, g, &api.start_cluster(&id).await?)
        }
        ClusterCommand::Create { name } => {
            let id = api.create_cluster(name.as_deref()).await?;
            if g.json {
                print_json(out, &json!({"cluster_id": id}))
            } else {
                writeln!(out, "{id}").map_err(io_err)
            }
        }
        ClusterCommand::Stop { cluster } => {
            let id = resolve_cluster(api, &cluster).await?.id;
            let msg = api.stop_cluster(&id).await?;
            if g.json {
                print_json(out, &json!({"cluster_id": id, "message": msg}))
            } else {
                writeln!(out, "{}", printable(&msg)).map_err(io_err)
            }
        }
    }
}

/// Text from the manager (names other users chose) with what a terminal would act on
/// rather than show, control characters and bidirectional overrides, written as
/// `\u{..}` escapes, so a name cannot move the cursor or reorder what is shown.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let acts =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if text.chars().any(acts) {
        text.chars()
            .map(|c| {
                if acts(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

fn ids(out: Out<'_>, g: &Global, ids: &[String]) -> Result<()> {
    if g.json {
        return print_json(out, &json!(ids));
    }
    for id in ids {
        writeln!(out, "{id}").map_err(io_err)?;
    }
    Ok(())
}

fn show_cluster(out: Out<'_>, g: &Global, c: &crate::types::Cluster) -> Result<()> {
    if g.json {
        return print_json(out, &to_json(c));
    }
    // A manager that runs the node API itself (ours) names no separate node endpoint:
    // printing ":0" would send people looking for a port that does not exist.
    let nodes = if c.node_host.is_empty() {
        String::new()
    } else {
        format!(" nodes at {}:{}", printable(&c.node_host), c.node_port)
    };
    writeln!(out, "{} {} {}{nodes}", c.id, printable(&c.name), c.status).map_err(io_err)
}

/// The swarm file: like [`SwarmSpec`], with each module's program read from a file
/// relative to the swarm file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwarmFile {
    name: String,
    #[serde(default)]
    max_iteration: Option<u32>,
    tasks: Vec<TaskFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    alias: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    after: Vec<String>,
    module: ModuleFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleFile {
    name: String,
    image: String,
    program: std::path::PathBuf,
    #[serde(default)]
    datasets: Vec<String>,
}

fn read_swarm(path: &std::path::Path) -> Result<SwarmSpec> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    let file: SwarmFile = serde_json::from_str(&text).map_err(|e| Error::Usage {
        message: format!(
            "{}: {e}; see docs/cli.md for the swarm file format",
            path.display()
        ),
    })?;
    let base = path.parent().unwrap_or_else(|| std::path::Path::new("."));
    let mut tasks = Vec::with_capacity(file.tasks.len());
    for t in file.tasks {
        let program_path = base.join(&t.module.program);
        let program = std::fs::read(&program_path).map_err(|source| Error::Io {
            path: program_path,
            source,
        })?;
        let mut module = ModuleSpec::new(t.module.name, t.module.image, program);
        module.datasets = t.module.datasets;
        let mut task = TaskSpec::new(t.alias, module);
        if let Some(m) = t.method {
            task.method = m;
        }
        task.after = t.after;
        tasks.push(task);
    }
    let mut spec = SwarmSpec::new(file.name, tasks);
    spec.max_iteration = file.max_iteration;
    Ok(spec)
}

async fn swarm(s: SwarmCommand, api: &UserApi, g: &Global, out: Out<'_>) -> Result<()> {
    match s {
        SwarmCommand::Deploy { cluster, file } => {
            let spec = read_swarm(&file)?;
            let cluster = cluster_id(api, &cluster).await?;
            let swarm = api.deploy_swarm(&cluster, &spec).await?;
            show_swarm(out, g, &swarm)
        }
        SwarmCommand::Stop { id } => {
            let msg = api.stop_swarm(&id).await?;
            if g.json {
                print_json(out, &json!({"swarm_id": id, "message": msg}))
            } else {
                writeln!(out, "{}", printable(&msg)).map_err(io_err)
            }
        }
        SwarmCommand::List => ids(out, g, &api.list_swarms().await?),
        SwarmCommand::Get { id } => show_swarm(out, g, &api.get_swarm(&id).await?),
    }
}

fn show_swarm(out: Out<'_>, g: &Global, s: &crate::types::Swarm) -> Result<()> {
    if g.json {
        return print_json(out, &to_json(s));
    }
    writeln!(
        out,
        "{} {} {} on cluster {}",
        s.id,
        printable(&s.name),
        s.status,
        s.cluster_id
    )
    .map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(iat: u64, exp: u64) -> SecretString {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        SecretString::from(format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"EdDSA"}"#),
            b64(&format!(r#"{{"sub":"u","iat":{iat},"exp":{exp}}}"#))
        ))
    }

    #[test]
    fn a_stored_token_is_renewed_when_expired_or_within_the_refresh_threshold() {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let config = crate::RefreshConfig::default();
        let check = |token: SecretString, due: bool| {
            assert_eq!(renewal_due(&token, &config), due);
        };
        check(jwt(now, now + 3600), false);
        check(jwt(now - 600, now + 3000), false);
        // 80 % of its life gone (past the 75 % threshold).
        check(jwt(now - 2880, now + 720), true);
        // Inside the 60 s margin before expiry, and expired.
        check(jwt(now - 30, now + 30), true);
        check(jwt(now - 3600, now - 1), true);
        // No readable expiry: never renewed ahead of time.
        check(SecretString::from("opaque-api-token"), false);
    }

    #[test]
    fn token_states_and_times_for_people() {
        assert_eq!(
            token_state(None, Some(1000), 400),
            TokenState::Valid(Some(600))
        );
        assert_eq!(token_state(None, Some(1000), 1000), TokenState::Expired(0));
        assert_eq!(
            token_state(Some(500), Some(1000), 400),
            TokenState::NotYetValid(100)
        );
        assert_eq!(token_state(None, None, 400), TokenState::Valid(None));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_790_000_000), "2026-09-21T14:13:20Z");
        assert_eq!(TokenState::Expired(3 * 3600).describe(), "expired 3h0m ago");
    }

    fn jwt_with(claims: &str) -> String {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.c2ln", b64(r#"{"alg":"EdDSA"}"#), b64(claims))
    }

    /// `manta token inspect - [--json]` with `token` on standard input.
    fn inspect_stdin(token: &str, json: bool) -> (u8, String, String) {
        let store = manta_config::MemoryStore::new();
        let mut stdin = std::io::Cursor::new(format!("{token}\n").into_bytes());
        let mut ctx = Context {
            env: manta_config::Env::from_pairs([("MANTA_HOME", "/nonexistent-manta-home")]),
            store: &store,
            stdin: &mut stdin,
            stdin_is_terminal: false,
            log: tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::sink),
        };
        let mut args = vec!["manta", "token", "inspect", "-"];
        if json {
            args.push("--json");
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = super::super::run_with(args, &mut ctx, &mut out, &mut err);
        let code: u8 = format!("{code:?}")
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap();
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn inspect_exit_status_tells_valid_expired_not_yet_valid_and_malformed_apart() {
        // A day away from now either way: far beyond any clock tick during the test.
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let valid = jwt_with(&format!(
            r#"{{"sub":"u","iat":{now},"exp":{}}}"#,
            now + 86_400
        ));
        let expired = jwt_with(&format!(r#"{{"sub":"u","exp":{}}}"#, now - 86_400));
        let early = jwt_with(&format!(
            r#"{{"sub":"u","nbf":{},"exp":{}}}"#,
            now + 86_400,
            now + 2 * 86_400
        ));
        let (code, out, _) = inspect_stdin(&valid, false);
        assert_eq!(code, super::super::EXIT_OK, "{out}");
        assert!(
            out.contains("status:  valid, expires in 23h")
                || out.contains("status:  valid, expires in 24h"),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "{} (unix {})",
                rfc3339(now + 86_400),
                now + 86_400
            )),
            "{out}"
        );
        let (code, out, _) = inspect_stdin(&expired, false);
        assert_eq!(code, super::super::EXIT_TOKEN_EXPIRED, "{out}");
        assert!(
            out.contains("expired 1d0h ago") || out.contains("expired 24h"),
            "{out}"
        );
        let (code, out, _) = inspect_stdin(&early, true);
        assert_eq!(code, super::super::EXIT_TOKEN_NOT_YET_VALID, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["status"], "not_yet_valid");
        assert_eq!(v["not_before"]["unix"], now + 86_400);
        assert_eq!(v["not_before"]["rfc3339"], rfc3339(now + 86_400));
        assert_eq!(v["expires_at"]["unix"], now + 2 * 86_400);
        let (code, _, err) = inspect_stdin("not.a.jwt", false);
        assert_eq!(code, super::super::EXIT_USAGE, "{err}");
        let distinct = [
            super::super::EXIT_OK,
            super::super::EXIT_TOKEN_EXPIRED,
            super::super::EXIT_TOKEN_NOT_YET_VALID,
            super::super::EXIT_USAGE,
        ];
        let unique: std::collections::BTreeSet<_> = distinct.iter().collect();
        assert_eq!(unique.len(), distinct.len());
    }

    #[test]
    fn inspect_refuses_a_token_on_the_command_line() {
        let store = manta_config::MemoryStore::new();
        let mut stdin = std::io::Cursor::new(Vec::new());
        let mut ctx = Context {
            env: manta_config::Env::from_pairs([("MANTA_HOME", "/nonexistent-manta-home")]),
            store: &store,
            stdin: &mut stdin,
            stdin_is_terminal: false,
            log: tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::sink),
        };
        let token = jwt_with(r#"{"sub":"u"}"#);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = super::super::run_with(
            ["manta", "token", "inspect", token.as_str()],
            &mut ctx,
            &mut out,
            &mut err,
        );
        assert_eq!(code, std::process::ExitCode::from(super::super::EXIT_USAGE));
        let err = String::from_utf8(err).unwrap();
        assert!(
            err.contains("manta token inspect -") && !err.contains(&token),
            "{err}"
        );
        assert!(out.is_empty());
    }
}
