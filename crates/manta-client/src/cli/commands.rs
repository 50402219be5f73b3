//! What each `manta` command does, on top of [`crate::UserApi`] and manta-config.

use std::io::Write;
use std::time::{Duration, SystemTime};

use clap::CommandFactory as _;
use manta_config::{
    ClientConfig, ConfigDocument, ConfigError, KEYRING_ENTRY, KEYRING_REFRESH_ENTRY,
    KEYRING_SERVICE, MantaHome, SelectedProfile, TokenSource,
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

pub(super) fn dispatch(cli: super::Cli, ctx: &mut Context<'_>, out: Out<'_>) -> Result<()> {
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
    match cli.command {
        Command::Completions { shell } => {
            // clap_complete panics when its writer fails (e.g. `| head` closed the pipe),
            // so the script is rendered first and written with the error kept.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut super::Cli::command(), "manta", &mut script);
            out.write_all(&script).map_err(io_err)
        }
        Command::Profile(p) => profile(p, g, ctx, out),
        Command::Token(TokenCommand::Inspect { token }) => inspect(token, g, ctx, out),
        Command::Login(args) => runtime.block_on(login(args, g, ctx, out)),
        command => runtime.block_on(connected(command, g, ctx, out)),
    }
}

fn home(ctx: &Context<'_>) -> Result<MantaHome> {
    Ok(MantaHome::from_env(&ctx.env)?)
}

fn select(g: &Global, ctx: &Context<'_>, home: &MantaHome) -> Result<SelectedProfile> {
    let config = ClientConfig::load(home, &ctx.env)?;
    let mut selected = config.select(g.profile.as_deref(), &ctx.env, &home.client_config())?;
    if let Some(h) = &g.host {
        selected.profile.host.clone_from(h);
    }
    if let Some(p) = g.port {
        selected.profile.port = p;
    }
    if let Some(c) = &g.cert_folder {
        selected.profile.cert_folder = Some(c.clone());
    }
    Ok(selected)
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

/// An API for the selected profile, with where its token came from and, when `manta login`
/// stored the token, the place that also holds the session refresh token.
struct Connection {
    api: UserApi,
    source: TokenSource,
    home: MantaHome,
    /// Where the token is stored by manta (keyring or credentials file); `None` for tokens
    /// from the environment, which manta never rewrites.
    store: Option<Store>,
    /// Whether a session refresh token was stored beside the token.
    session: bool,
}

/// The API for the selected profile with the token from the chain and, when the token was
/// stored by `manta login`, the session refresh token stored beside it.
fn connect(g: &Global, ctx: &Context<'_>) -> Result<Connection> {
    let home = home(ctx)?;
    let selected = select(g, ctx, &home)?;
    let mut lookup = manta_config::TokenLookup::new(&ctx.env, &home);
    lookup.profile = Some(&selected.profile);
    lookup.store = Some(ctx.store);
    let resolved = lookup.resolve()?;
    let store = stored_in(&resolved.source);
    let refresh = match store {
        Some(store) => read_refresh(store, ctx, &home)?,
        None => None,
    };
    tracing::debug!(profile = %selected.name, source = %resolved.source, session = refresh.is_some(), "using token");
    let mut b = builder(g, &selected).token(resolved.token);
    let session = refresh.is_some();
    if let Some(refresh) = refresh {
        b = b.refresh_token(refresh);
    }
    Ok(Connection {
        api: b.build()?,
        source: resolved.source,
        home,
        store,
        session,
    })
}

/// Where manta stores a token that came from `source`, if it does.
fn stored_in(source: &TokenSource) -> Option<Store> {
    match source {
        TokenSource::Keyring { .. } => Some(Store::Keyring),
        TokenSource::CredentialsFile { .. } => Some(Store::File),
        _ => None,
    }
}

/// How a place is named in messages.
fn place_name(store: Store, home: &MantaHome) -> String {
    match store {
        Store::Keyring => format!("keyring {KEYRING_SERVICE}/{KEYRING_ENTRY}"),
        Store::File => home.credentials().display().to_string(),
    }
}

/// The session refresh token stored in `store`, if any.
fn read_refresh(store: Store, ctx: &Context<'_>, home: &MantaHome) -> Result<Option<SecretString>> {
    let found = match store {
        Store::Keyring => ctx.store.get(KEYRING_SERVICE, KEYRING_REFRESH_ENTRY)?,
        Store::File => manta_config::read_credentials_refresh_token(&home.credentials(), false)?,
    };
    Ok(found.filter(|r| !r.expose_secret().is_empty()))
}

/// Removes the session refresh token from `store`; `Ok(false)` when there was none.
fn remove_refresh(store: Store, ctx: &Context<'_>, home: &MantaHome) -> Result<bool> {
    Ok(match store {
        Store::Keyring => ctx.store.delete(KEYRING_SERVICE, KEYRING_REFRESH_ENTRY)?,
        Store::File => manta_config::remove_credentials_refresh_token(home)?,
    })
}

/// Stores the access token and the session refresh token together (or the token alone,
/// removing a refresh token left from an older session). The refresh token goes first in
/// the keyring and both go in one atomic write to the file, because the old refresh token
/// may already be used up.
fn store_session(
    store: Store,
    token: &SecretString,
    refresh: Option<&SecretString>,
    ctx: &Context<'_>,
    home: &MantaHome,
) -> Result<String> {
    match (store, refresh) {
        (Store::Keyring, Some(refresh)) => {
            ctx.store
                .set(KEYRING_SERVICE, KEYRING_REFRESH_ENTRY, refresh)?;
            store_token(store, token, ctx, home)
        }
        (Store::File, Some(refresh)) => {
            let path = manta_config::save_credentials_session(home, token, refresh)?;
            Ok(path.display().to_string())
        }
        (_, None) => {
            let place = store_token(store, token, ctx, home)?;
            remove_refresh(store, ctx, home)?;
            Ok(place)
        }
    }
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
async fn renew_session(
    api: &UserApi,
    store: Store,
    ctx: &Context<'_>,
    home: &MantaHome,
) -> Result<SecretString> {
    let Some(refresh) = api.session_refresh_token() else {
        return Err(Error::SessionEnded {
            message: "no session refresh token is stored".into(),
        });
    };
    match api.refresh_token(&refresh).await {
        Ok(access) => {
            let rotated = api.session_refresh_token();
            store_session(store, &access, rotated.as_ref(), ctx, home).map_err(|e| {
                Error::SessionNotStored {
                    place: place_name(store, home),
                    source: Box::new(e),
                }
            })?;
            tracing::info!(stored_in = %place_name(store, home), "session renewed");
            Ok(access)
        }
        Err(e @ (Error::Authentication { .. } | Error::TokenExpired { .. })) => {
            let reason = match &e {
                Error::Authentication { message } | Error::TokenExpired { message } => {
                    message.clone()
                }
                _ => String::new(),
            };
            let removed = match remove_refresh(store, ctx, home) {
                Ok(_) => format!(
                    "the stored refresh token was removed from {}",
                    place_name(store, home)
                ),
                Err(r) => format!(
                    "the stored refresh token could not be removed from {}: {r}",
                    place_name(store, home)
                ),
            };
            Err(Error::SessionEnded {
                message: format!("the manager refused to renew it ({reason}); {removed}"),
            })
        }
        Err(e) => Err(e),
    }
}

fn store_token(
    store: Store,
    token: &SecretString,
    ctx: &Context<'_>,
    home: &MantaHome,
) -> Result<String> {
    match store {
        Store::Keyring => ctx.store.set(KEYRING_SERVICE, KEYRING_ENTRY, token)?,
        // Creates a missing MANTA_HOME with mode 0700.
        Store::File => {
            manta_config::save_credentials_token(home, token)?;
        }
    }
    Ok(place_name(store, home))
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
        return Err(Error::InvalidArgument {
            message: format!("no {what} on standard input"),
        });
    }
    Ok(value)
}

/// Turns terminal echo off (or on) with `stty`, which needs no unsafe code or extra crate.
fn echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}

async fn login(args: LoginArgs, g: &Global, ctx: &mut Context<'_>, out: Out<'_>) -> Result<()> {
    let home = home(ctx)?;
    let selected = select(g, ctx, &home)?;
    let username = match args.username {
        Some(u) => u,
        None if args.password_stdin => {
            return Err(Error::InvalidArgument {
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
        echo(false);
        let p = read_line(ctx, "password");
        echo(true);
        eprintln!();
        SecretString::from(p?)
    } else {
        return Err(Error::InvalidArgument {
            message:
                "standard input is not a terminal; pass --password-stdin and pipe the password"
                    .into(),
        });
    };
    let api = builder(g, &selected).sign_in(&username, &password).await?;
    let refresh = api.session_refresh_token();
    let place = store_session(args.store, &api.token(), refresh.as_ref(), ctx, &home)?;
    let stored = if refresh.is_some() {
        "token and session refresh token"
    } else {
        "token (this manager has no sessions: sign in again when it expires)"
    };
    if g.json {
        print_json(
            out,
            &json!({"username": username, "profile": selected.name, "stored_in": place,
                    "session_renewable": refresh.is_some()}),
        )
    } else {
        writeln!(
            out,
            "signed in as {username} ({}:{}); {stored} stored in {place}",
            selected.profile.host, selected.profile.port
        )
        .map_err(io_err)
    }
}

fn forget(source: &TokenSource, ctx: &Context<'_>, home: &MantaHome) -> Result<Option<String>> {
    match source {
        TokenSource::Keyring { service, entry } => {
            ctx.store.delete(service, entry)?;
            Ok(Some(format!("keyring {service}/{entry}")))
        }
        TokenSource::CredentialsFile { path } => {
            manta_config::remove_credentials_token(home)?;
            Ok(Some(path.display().to_string()))
        }
        _ => Ok(None),
    }
}

fn when(secs: Option<u64>) -> String {
    secs.map_or_else(|| "-".to_owned(), |s| format!("{s} (unix)"))
}

fn left(exp: Option<u64>) -> String {
    let Some(exp) = exp else {
        return "never".into();
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if exp <= now {
        return "expired".into();
    }
    let s = exp - now;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

async fn connected(
    command: Command,
    g: &Global,
    ctx: &mut Context<'_>,
    out: Out<'_>,
) -> Result<()> {
    let conn = connect(g, ctx)?;
    let logout = matches!(command, Command::Logout);
    let explicit_refresh = matches!(command, Command::Token(TokenCommand::Refresh));
    // A stored session whose access token expired (or soon will) is renewed before the
    // call, so a user who signed in once keeps working until the session ends. Logout
    // revokes the session instead, and `token refresh` renews it itself.
    if let Some(store) = conn.store
        && conn.session
        && !logout
        && !explicit_refresh
        && renewal_due(&conn.api.token(), &crate::RefreshConfig::default())
    {
        renew_session(&conn.api, store, ctx, &conn.home).await?;
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
        let stored = if refresh.is_some() {
            store_session(store, &conn.api.token(), refresh.as_ref(), ctx, &conn.home)
        } else {
            store_token(store, &conn.api.token(), ctx, &conn.home)
        };
        if let Err(e) = stored {
            if refresh.is_some() && result.is_ok() {
                return Err(Error::SessionNotStored {
                    place: place_name(store, &conn.home),
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
        Command::Logout => {
            // With a stored session, RevokeSession ends it with its refresh token, which
            // works even after the access token expired; an unknown refresh token falls
            // back to the published Logout with the access token.
            let refresh = api.session_refresh_token();
            let server = match &refresh {
                Some(r) => match api.revoke_session(r).await {
                    Err(e) if e.is_auth() => api.logout().await.map(|_| ()),
                    other => other,
                },
                None => api.logout().await.map(|_| ()),
            };
            let forgotten = forget(source, ctx, home)?;
            let session_removed = match conn.store {
                Some(store) => remove_refresh(store, ctx, home)?,
                None => false,
            };
            let what = if session_removed {
                "the token and the session refresh token"
            } else {
                "the token"
            };
            let where_ = forgotten
                .unwrap_or_else(|| format!("nothing stored ({source} is not managed by manta)"));
            match server {
                Ok(()) | Err(Error::Authentication { .. } | Error::TokenExpired { .. }) => {
                    writeln!(out, "logged out; removed {what} from {where_}").map_err(io_err)
                }
                Err(e) => Err(e),
            }
        }
        Command::Whoami => {
            let user = api.get_user().await?;
            let exp = manta_auth::inspect(api.token().expose_secret())
                .ok()
                .and_then(|i| i.claims.exp);
            // Where the session refresh token is, never the token itself.
            let session_in = match conn.store {
                Some(Store::Keyring) if api.session_refresh_token().is_some() => {
                    Some(format!("keyring {KEYRING_SERVICE}/{KEYRING_REFRESH_ENTRY}"))
                }
                Some(Store::File) if api.session_refresh_token().is_some() => Some(format!(
                    "{} [auth] refresh_token",
                    home.credentials().display()
                )),
                _ => None,
            };
            if g.json {
                let mut v = to_json(&user);
                v["token_source"] = json!(source.to_string());
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
                    "{} (id {})\nscopes: {}\ntoken: {source}, expires in {}\nsession: {session}",
                    user.username,
                    user.id,
                    if user.scopes.is_empty() {
                        "-".to_owned()
                    } else {
                        user.scopes.join(" ")
                    },
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
                let new = renew_session(api, store, ctx, home).await?;
                let exp = manta_auth::inspect(new.expose_secret())
                    .ok()
                    .and_then(|i| i.claims.exp);
                return writeln!(
                    out,
                    "session renewed; token expires in {}; token and session refresh token stored in {}",
                    left(exp),
                    place_name(store, home)
                )
                .map_err(io_err);
            }
            let new = api.refresh_now().await?;
            let exp = manta_auth::inspect(new.expose_secret())
                .ok()
                .and_then(|i| i.claims.exp);
            let stored = match source {
                TokenSource::Keyring { .. } => Some(store_token(Store::Keyring, &new, ctx, home)?),
                TokenSource::CredentialsFile { .. } => {
                    Some(store_token(Store::File, &new, ctx, home)?)
                }
                _ => None,
            };
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
            writeln!(out, "revoked API token {id}").map_err(io_err)
        }
        TokenCommand::Inspect { .. } => Ok(()),
    }
}

fn inspect(token: Option<String>, g: &Global, ctx: &mut Context<'_>, out: Out<'_>) -> Result<()> {
    let (token, source) = match token.as_deref() {
        Some("-") => (
            SecretString::from(read_line(ctx, "token")?.trim().to_owned()),
            "standard input".to_owned(),
        ),
        Some(t) => (SecretString::from(t.to_owned()), "argument".to_owned()),
        None => {
            let home = home(ctx)?;
            let selected = select(g, ctx, &home)?;
            let mut lookup = manta_config::TokenLookup::new(&ctx.env, &home);
            lookup.profile = Some(&selected.profile);
            lookup.store = Some(ctx.store);
            let r = lookup.resolve()?;
            (r.token, r.source.to_string())
        }
    };
    let seen = manta_auth::inspect(token.expose_secret()).map_err(Error::Token)?;
    let c = &seen.claims;
    let scopes = seen.scopes().map_or_else(
        |_| c.permissions.clone(),
        |s| s.scopes().iter().map(ToString::to_string).collect(),
    );
    if g.json {
        return print_json(
            out,
            &json!({
                "source": source,
                "verified": false,
                "header": {"alg": seen.header.alg.to_string(), "kid": seen.header.kid, "typ": seen.header.typ},
                "claims": to_json(c),
                "kind": c.kind.map(|k| k.to_string()),
                "scopes": scopes,
                "time_left": left(c.exp),
            }),
        );
    }
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    writeln!(
        out,
        "token from {source} (NOT verified: decoded only)\n\
         header: alg={} kid={} typ={}\n\
         kind:    {}\nsubject: {}\nissuer:  {}\naudience: {}\nid (jti): {}\n\
         issued:  {}\nexpires: {}\ntime left: {}\nscopes:  {}",
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
        if scopes.is_empty() {
            "-".to_owned()
        } else {
            scopes.join(" ")
        },
    )
    .map_err(io_err)
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
                let list: Vec<_> = config
                    .profiles
                    .iter()
                    .map(|(name, p)| {
                        json!({"name": name, "host": p.host, "port": p.port, "token_env": p.token_variable(),
                               "cert_folder": p.cert_folder, "current": current.as_deref() == Some(name)})
                    })
                    .collect();
                return print_json(out, &json!(list));
            }
            if config.profiles.is_empty() {
                writeln!(out, "no profiles in {}; the built-in default is localhost:50052 (add [profiles.NAME] tables)", path.display())
                    .map_err(io_err)?;
                return Ok(());
            }
            for (name, p) in &config.profiles {
                let mark = if current.as_deref() == Some(name) {
                    "*"
                } else {
                    " "
                };
                let tls = match (&p.cert_folder, p.port) {
                    (Some(f), _) => format!("mTLS {}", f.display()),
                    (None, 443) => "TLS".to_owned(),
                    (None, _) => "plaintext".to_owned(),
                };
                writeln!(
                    out,
                    "{mark} {name:<12} {}:{:<6} {tls:<20} token from ${}",
                    p.host,
                    p.port,
                    p.token_variable()
                )
                .map_err(io_err)?;
            }
            Ok(())
        }
        ProfileCommand::Use { name } => {
            // Refuses unknown names with the list of available ones and a suggestion.
            config.select(Some(&name), &ctx.env, &path)?;
            let mut doc = match ConfigDocument::open(&path) {
                Ok(d) => d,
                Err(ConfigError::NotFound { .. }) => ConfigDocument::parse("")?,
                Err(e) => return Err(e.into()),
            };
            doc.set_str("default_profile", &name)?;
            doc.save(&path)?;
            writeln!(out, "default profile is now {name} ({})", path.display()).map_err(io_err)
        }
    }
}

async fn cluster(c: ClusterCommand, api: &UserApi, g: &Global, out: Out<'_>) -> Result<()> {
    match c {
        ClusterCommand::List => ids(out, g, &api.list_clusters().await?),
        ClusterCommand::Get { id } => show_cluster(out, g, &api.get_cluster(&id).await?),
        ClusterCommand::Start { id } => show_cluster(out, g, &api.start_cluster(&id).await?),
        ClusterCommand::Create { name } => {
            let id = api.create_cluster(name.as_deref()).await?;
            if g.json {
                print_json(out, &json!({"cluster_id": id}))
            } else {
                writeln!(out, "{id}").map_err(io_err)
            }
        }
        ClusterCommand::Stop { id } => {
            let msg = api.stop_cluster(&id).await?;
            writeln!(out, "{msg}").map_err(io_err)
        }
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
    writeln!(
        out,
        "{} {} {} nodes at {}:{}",
        c.id, c.name, c.status, c.node_host, c.node_port
    )
    .map_err(io_err)
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
    let file: SwarmFile = serde_json::from_str(&text).map_err(|e| Error::InvalidArgument {
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
            let swarm = api.deploy_swarm(&cluster, &spec).await?;
            show_swarm(out, g, &swarm)
        }
        SwarmCommand::Stop { id } => {
            let msg = api.stop_swarm(&id).await?;
            writeln!(out, "{msg}").map_err(io_err)
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
        s.id, s.name, s.status, s.cluster_id
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
}
