//! The user guide's (docs/guide.md) "Token management" examples as one program: expiry
//! without verification, sign-in with a session, refresh, API tokens and rotation.
//!
//! ```text
//! printf '%s\n' "$PASSWORD" | cargo run -p manta-client --example guide_tokens -- HOST PORT USER
//! ```

use std::time::{Duration, SystemTime};

use manta_client::UserApi;
use secrecy::{ExposeSecret as _, SecretString};

// guide: expiry
/// When the token expires, read WITHOUT verifying it (for display and scheduling only; the
/// manager verifies every call).
fn check_token_expiry(token: &SecretString) -> bool {
    match manta_auth::inspect(token.expose_secret()) {
        Ok(seen) => match seen.time_left(SystemTime::now()) {
            Some(left) => {
                println!("token expires in {} s", left.as_secs());
                !left.is_zero()
            }
            None => false,
        },
        Err(e) => {
            println!("error checking token: {e}");
            false
        }
    }
}
// guide: end

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "localhost".to_owned());
    let port: u16 = args.next().as_deref().unwrap_or("50052").parse()?;
    let username = args.next().unwrap_or_else(|| "alice".to_owned());
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = SecretString::from(line.trim_end().to_owned());

    // guide: refresh
    // A session: an access token plus a refresh token kept inside the API. Calls renew the
    // access token on their own; this is the seed's explicit `refresh_token`.
    let api = UserApi::sign_in(&host, port, &username, &password).await?;
    if let Some(refresh) = api.session_refresh_token() {
        let new_access = api.refresh_token(&refresh).await?;
        check_token_expiry(&new_access);
    }
    println!("renewals so far: {}", api.refresh_count());
    // guide: end

    // guide: api-tokens
    let scopes = vec!["cluster:read".to_owned()];
    let created = api
        .create_api_token(
            "ci-pipeline",
            &scopes,
            Some(Duration::from_secs(7 * 86_400)),
        )
        .await?;
    // Shown once: store it now (a CI secret, the keyring, credentials.ini with mode 0600).
    println!("created token {} ({})", created.info.id, created.info.name);
    for t in api.list_api_tokens(false).await? {
        println!("{} {} scopes={}", t.id, t.name, t.scopes.join(","));
    }
    api.revoke_api_token(&created.info.id).await?;
    // guide: end

    // guide: rotation
    // Every clone of `api` shares the connection and switches to the new token at once.
    let worker = api.clone();
    api.rotate_token(created.token);
    match worker.get_user().await {
        Ok(_) => println!("the rotated token works"),
        Err(e) => println!("the rotated (revoked) token is refused: {e}"),
    }
    // guide: end
    Ok(())
}
