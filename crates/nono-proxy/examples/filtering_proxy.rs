//! A filtering proxy in a few lines, using only the public API: allow one host, print the
//! variables a client needs, serve until Ctrl-C, then print the audit trail.
//!
//! ```sh
//! cargo run -p nono-proxy --example filtering_proxy -- api.openai.com '*.github.com'
//! # in another shell, with the printed variables exported:
//! curl -sI https://api.openai.com    # allowed
//! curl -sI https://example.com       # 403 not_allowlisted
//! ```

use nono_proxy::ProxyConfig;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let allowed: Vec<String> = std::env::args().skip(1).collect();
    let config = ProxyConfig {
        allowed_hosts: allowed,
        ..ProxyConfig::default()
    };
    let handle = nono_proxy::start(config).await?;
    for (name, value) in handle.env_vars() {
        println!("export {name}='{value}'");
    }
    tokio::signal::ctrl_c().await?;
    for event in handle.audit().drain() {
        println!("{}", serde_json::to_string(&event)?);
    }
    handle.shutdown().await;
    Ok(())
}
