//! Prints the resolved policy for a profile, as `nono profile show` would.
//!
//! `cargo run -p nono-policy --example resolve -- claude-code [--allow-domain HOST ...]`

use nono_policy::{resolve, Env, PolicyArgs, PolicyError};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), PolicyError> {
    let mut argv = std::env::args().skip(1);
    let mut args = PolicyArgs {
        profile: argv.next(),
        ..PolicyArgs::default()
    };
    while let Some(flag) = argv.next() {
        match (flag.as_str(), argv.next()) {
            ("--allow-domain", Some(host)) => args.allow_domain.push(host),
            ("--credential", Some(name)) => args.credential.push(name),
            ("--network-profile", Some(name)) => args.network_profile = Some(name),
            _ => return Err(PolicyError::Env(format!("unsupported argument {flag}"))),
        }
    }
    let policy = resolve(&args, &Env::from_process()?)?;
    let json =
        serde_json::to_string_pretty(&policy).map_err(|e| PolicyError::Env(e.to_string()))?;
    println!("{json}");
    Ok(())
}
