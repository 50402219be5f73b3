//! The user guide's (docs/guide.md) "Initializing the API", "Secure connection (mTLS)",
//! "Token validation", "Permission scopes" and "Errors" examples as one program.
//!
//! ```text
//! MANTA_TOKEN=... cargo run -p manta-client --example guide_connect -- HOST PORT [CERT_FOLDER]
//! ```

use manta_client::{Error, UserApi};
use secrecy::SecretString;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "localhost".to_owned());
    let port: u16 = args.next().as_deref().unwrap_or("50052").parse()?;
    let cert_folder = args.next();

    // guide: basic
    let token = SecretString::from(std::env::var("MANTA_TOKEN")?);
    let api = UserApi::new(token.clone(), &host, port)?;
    // guide: end

    // guide: mtls
    let api = match cert_folder {
        // ca.crt verifies the manager; client.crt and client.key identify this client.
        Some(folder) => UserApi::builder(&host, port)
            .token(token)
            .cert_folder(folder)
            .build()?,
        None => api,
    };
    // guide: end

    // guide: validate
    match api.get_user().await {
        Ok(user) => println!("token valid for user: {}", user.username),
        Err(e) if e.is_auth() => println!("invalid token: {e}"),
        Err(e) => return Err(e.into()),
    }
    // guide: end

    // guide: scopes
    let user = api.get_user().await?;
    if user.has_scope("cluster:create") {
        println!("{} can create clusters", user.username);
    }
    if user.has_scope("swarm:deploy") {
        println!("{} can deploy swarms", user.username);
    }
    println!("scopes: {}", user.scopes.join(" "));
    // guide: end

    // guide: errors
    match api.list_clusters().await {
        Ok(ids) => println!("{} clusters", ids.len()),
        Err(Error::Authentication { message }) => {
            eprintln!("authentication failed: {message}; request a new token")
        }
        Err(Error::TokenExpired { message }) => {
            eprintln!("token expired: {message}; run `manta login` again")
        }
        Err(Error::PermissionDenied { scope, .. }) => {
            eprintln!("permission denied; ask an administrator for {scope:?}")
        }
        Err(Error::Unavailable { message }) => eprintln!("manager unreachable: {message}"),
        Err(other) => eprintln!("unexpected error: {other}"),
    }
    // guide: end
    Ok(())
}
