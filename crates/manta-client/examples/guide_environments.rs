//! The user guide's (docs/guide.md) "Secure storage", "Multiple environments" and
//! "Audit logging" examples: the token chain, profiles and the audit file.
//!
//! ```text
//! cargo run -p manta-client --example guide_environments -- [PROFILE]
//! ```

use manta_client::UserApi;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // guide: audit
    manta_client::audit::init_file("manta_api_audit.log")?;
    // guide: end

    // guide: profiles
    // ~/.manta/config.toml (or $MANTA_HOME/config.toml) names the profiles; each profile's
    // `token_env` says where its token lives. No profile given: MANTA_ENV, then
    // default_profile, then localhost:50052.
    let api = match std::env::args().nth(1) {
        Some(profile) => UserApi::from_profile(&profile)?,
        None => UserApi::from_env()?,
    };
    println!(
        "{}:{} ({})",
        api.host(),
        api.port(),
        if api.is_tls() { "TLS" } else { "plaintext" }
    );
    // guide: end
    let user = api.get_user().await?;
    println!("signed in as {}", user.username);
    Ok(())
}
