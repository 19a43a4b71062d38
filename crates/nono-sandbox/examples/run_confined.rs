//! Runs a command with read-only system paths, read-write access to the current directory
//! and no network, then prints what was enforced and how the command ended.
//!
//! `cargo run -p nono-sandbox --example run_confined -- ls -l`

use std::ffi::OsString;

use nono_sandbox::{
    prepare, resolve_program, spawn, system_paths, ExecSpec, FsRule, NetPolicy, SandboxPolicy,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some(name) = args.first() else {
        eprintln!("usage: run_confined PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    let mut fs = system_paths();
    fs.push(FsRule::read_write(std::env::current_dir()?));
    let policy = SandboxPolicy {
        fs,
        net: NetPolicy::Blocked {
            connect_ports: vec![],
            bind_ports: vec![],
        },
        allow_insecure_proxy: false,
        share_tmp: false,
    };
    let prepared = prepare(&policy)?;
    eprintln!("{:#?}", prepared.report());

    let program = resolve_program(name, std::env::var_os("PATH").as_deref())?;
    let env = std::env::vars_os()
        .filter(|(k, _)| k == "PATH" || k == "HOME" || k == "TERM" || k == "LANG")
        .collect();
    let mut child = spawn(
        &prepared,
        &ExecSpec {
            program,
            argv: args,
            env,
            ..Default::default()
        },
    )?;
    child.release()?;
    let exit = child.wait()?;
    eprintln!("exited: {exit:?}");
    std::process::exit(exit.shell_status());
}
