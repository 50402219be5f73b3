//! Issues a user access token with an Ed25519 key, verifies it and checks its scopes: the
//! whole token life cycle without a server or a file.
//!
//! ```text
//! cargo run -p manta-auth --example issue_and_verify
//! ```

use manta_auth::{Issuer, ScopeSet, SigningKey, TokenKind, TokenRequest, Verifier, VerifierConfig};
use secrecy::ExposeSecret as _;

fn main() -> Result<(), manta_auth::Error> {
    let issuer = Issuer::new(
        "manta-manager",
        "manta",
        SigningKey::generate_ed25519("k1")?,
    )?;
    let scopes = ScopeSet::parse(&["cluster:read", "swarm:*"])?;
    let issued = issuer.issue(&TokenRequest::new(TokenKind::UserAccess, "alice").scopes(scopes))?;

    // The verifier needs only the public half of the key, by `kid`.
    let verifier = Verifier::new(
        VerifierConfig::new("manta-manager", "manta"),
        issuer.key_set(),
    )?;
    let verified = verifier.verify(issued.token.expose_secret(), TokenKind::UserAccess)?;
    println!("verified a token for {:?}", verified.claims.sub);

    let granted = ScopeSet::parse(&verified.claims.permissions)?;
    println!("{}", granted.check("swarm:deploy")?);
    match granted.check("cluster:delete") {
        Ok(_) => println!("cluster:delete granted"),
        Err(e) => println!("refused: {e}"),
    }
    // A token of another kind is refused even though its signature is good.
    let refused = verifier.verify(issued.token.expose_secret(), TokenKind::Api);
    println!(
        "as an API token: {}",
        refused.map_or_else(|e| e.to_string(), |_| "accepted".into())
    );
    Ok(())
}
