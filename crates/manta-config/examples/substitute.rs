//! Loads a TOML configuration with `${VAR}` references and defaults into your own `serde`
//! type, with an injected environment, and shows the located error of a mistyped key.
//!
//! ```text
//! cargo run -p manta-config --example substitute
//! ```

use manta_config::{Env, LoadOptions, load_str};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    host: String,
    port: u16,
    debug: bool,
}

fn main() -> Result<(), manta_config::ConfigError> {
    // Tests and tools give their own environment; `Env::process()` reads the real one.
    let env = Env::from_pairs([("MANAGER_HOST", "manager.internal")]);
    let text = r#"
host = "${MANAGER_HOST}"
port = ${MANAGER_PORT:50052}
debug = ${DEBUG:false}
"#;
    let loaded = load_str::<Settings>(text, &env, &LoadOptions::new())?;
    let s = loaded.value;
    println!("host {} port {} debug {}", s.host, s.port, s.debug);

    let typo = "host = \"h\"\nprot = 1\ndebug = true\n";
    if let Err(e) = load_str::<Settings>(typo, &env, &LoadOptions::new()) {
        println!("error: {e}");
    }
    Ok(())
}
