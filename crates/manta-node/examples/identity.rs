//! How a node is named: the alias rule, the alias taken from a host name, and the node id
//! asked for with and without `random_id`.
//!
//! ```text
//! cargo run -p manta-node --example identity
//! ```

use manta_config::IdentityConfig;
use manta_node::{NodeIdentity, alias_from_hostname, is_valid_alias};

fn main() -> Result<(), manta_node::NodeError> {
    for alias in ["gpu-worker-1", "has space", ""] {
        println!("{alias:?} is a valid alias: {}", is_valid_alias(alias));
    }
    println!(
        "host GPU_Box.local gives alias {:?}",
        alias_from_hostname("GPU_Box.local")
    );

    let fixed = NodeIdentity::resolve(&IdentityConfig::default(), Some("worker-7"), "host")?;
    println!("fixed: alias {} node id {}", fixed.alias, fixed.node_id);

    let random = IdentityConfig {
        random_id: true,
        ..IdentityConfig::default()
    };
    let random = NodeIdentity::resolve(&random, None, "build-host")?;
    println!(
        "random: alias {} node id {} (new each start)",
        random.alias, random.node_id
    );
    Ok(())
}
