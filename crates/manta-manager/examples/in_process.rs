//! Starts the manager in-process on 127.0.0.1 (port 0) over a temporary store, adds a
//! user, mints an API token for it, and stops: the harness behind every test and bench that
//! needs a manager (feature `testing`).
//!
//! ```text
//! cargo run -p manta-manager --features testing --example in_process
//! ```

use manta_manager::testing::TestManager;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let manager = TestManager::start().await;
    println!(
        "user API on {}, node API on {}, data in {}",
        manager.user_addr,
        manager.node_addr,
        manager.data_dir().display()
    );
    let id = manager.add_user("alice", "correct horse battery staple", &["cluster:read"]);
    let _token = manager.api_token("alice", &["cluster:read"]);
    println!("user alice ({id}) has an API token; connect with manta-client's UserApi");
    manager.stop().await;
}
