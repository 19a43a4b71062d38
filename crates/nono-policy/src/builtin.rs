//! The built-in profiles, embedded from `profiles/` at the top of the repository.

/// `(name, JSON text)` of every built-in profile, sorted by name.
pub const BUILTIN_PROFILES: &[(&str, &str)] = &[
    (
        "claude-code",
        include_str!("../../../profiles/claude-code.json"),
    ),
    ("codex", include_str!("../../../profiles/codex.json")),
    ("default", include_str!("../../../profiles/default.json")),
    ("opencode", include_str!("../../../profiles/opencode.json")),
    (
        "toolchains",
        include_str!("../../../profiles/toolchains.json"),
    ),
];

/// The text of a built-in profile.
pub fn get(name: &str) -> Option<&'static str> {
    BUILTIN_PROFILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// Names of the built-in profiles, sorted.
pub fn names() -> Vec<&'static str> {
    BUILTIN_PROFILES.iter().map(|(n, _)| *n).collect()
}

/// How a built-in profile is named in error messages.
pub fn file_label(name: &str) -> String {
    format!("profiles/{name}.json (built-in)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::parse_profile;

    #[test]
    fn every_builtin_parses_and_names_itself() {
        let mut sorted = names();
        sorted.sort_unstable();
        assert_eq!(names(), sorted);
        for (name, text) in BUILTIN_PROFILES {
            let p = parse_profile(&file_label(name), text).unwrap();
            assert_eq!(p.meta.name.as_deref(), Some(*name));
            assert!(p.meta.description.is_some(), "{name}");
        }
        assert!(get("codex").is_some());
        assert!(get("nope").is_none());
    }
}
