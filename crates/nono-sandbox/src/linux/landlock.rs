//! Building the Landlock ruleset from the plan (with the landlock crate, before fork).

use std::os::fd::OwnedFd;

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetError, Scope, ABI,
};

use crate::error::SandboxError;
use crate::plan::{Plan, PlannedFsRule};
use crate::policy::FsAccess;

fn landlock_err(context: impl Into<String>) -> impl FnOnce(RulesetError) -> SandboxError {
    let context = context.into();
    move |source| SandboxError::Landlock { context, source }
}

/// The access rights one filesystem rule grants at `abi`.
fn rule_access(rule: &PlannedFsRule, abi: ABI) -> landlock::BitFlags<AccessFs> {
    let access = match rule.access {
        FsAccess::Read => AccessFs::from_read(abi),
        FsAccess::ReadWrite => AccessFs::from_all(abi),
    };
    if rule.is_dir {
        access
    } else {
        access & AccessFs::from_file(abi)
    }
}

/// The access bits a child uses for the rules it adds itself (fresh `/proc`, `/tmp`...).
pub(super) fn access_masks(abi: u8) -> super::rootfs::AccessMasks {
    let abi = ABI::from(i32::from(abi));
    super::rootfs::AccessMasks {
        read: AccessFs::from_read(abi).bits(),
        all: AccessFs::from_all(abi).bits(),
        file: AccessFs::from_file(abi).bits(),
    }
}

/// Creates and fills the ruleset; returns its descriptor for `landlock_restrict_self`.
///
/// Every request is a hard requirement: the plan only asks for what `plan.abi` offers, so
/// anything the kernel rejects is a real error, never silently dropped.
pub(super) fn build_ruleset(plan: &Plan) -> Result<OwnedFd, SandboxError> {
    let abi = ABI::from(i32::from(plan.abi));
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .map_err(landlock_err("handling filesystem access"))?;
    if plan.net.is_some() {
        ruleset = ruleset
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(landlock_err("handling TCP bind/connect (Landlock ABI 4)"))?;
    }
    if plan.scopes {
        ruleset = ruleset
            .scope(Scope::Signal | Scope::AbstractUnixSocket)
            .map_err(landlock_err(
                "scoping signals and abstract sockets (Landlock ABI 6)",
            ))?;
    }
    let mut created = ruleset
        .create()
        .map_err(landlock_err("creating the ruleset"))?;

    for rule in &plan.fs {
        let fd = PathFd::new(&rule.path).map_err(|e| SandboxError::GrantedPath {
            path: rule.path.clone(),
            source: std::io::Error::other(e),
        })?;
        created = created
            .add_rule(PathBeneath::new(fd, rule_access(rule, abi)))
            .map_err(landlock_err(format!("granting {}", rule.path.display())))?;
    }
    if let Some(net) = &plan.net {
        for &port in &net.connect_ports {
            created = created
                .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
                .map_err(landlock_err(format!("allowing TCP connect to port {port}")))?;
        }
        for &port in &net.bind_ports {
            created = created
                .add_rule(NetPort::new(port, AccessNet::BindTcp))
                .map_err(landlock_err(format!("allowing TCP bind on port {port}")))?;
        }
    }
    let fd: Option<OwnedFd> = created.into();
    // With a hard requirement the crate either creates a ruleset or errors; guard anyway.
    fd.ok_or(SandboxError::LandlockUnavailable { simulated: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn rule(access: FsAccess, is_dir: bool) -> PlannedFsRule {
        PlannedFsRule {
            path: PathBuf::from("/x"),
            access,
            is_dir,
        }
    }

    #[test]
    fn read_rule_grants_only_read_rights() {
        let got = rule_access(&rule(FsAccess::Read, true), ABI::V7);
        assert_eq!(
            got,
            AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::Execute
        );
    }

    #[test]
    fn file_rules_drop_directory_rights() {
        let got = rule_access(&rule(FsAccess::ReadWrite, false), ABI::V7);
        assert!(!got.contains(AccessFs::ReadDir));
        assert!(!got.contains(AccessFs::MakeReg));
        assert!(got.contains(AccessFs::WriteFile | AccessFs::Truncate));
    }
}
