//! The files a `cmd://` credential command runs or reads, for the self-edit check.
//!
//! The command is `/bin/sh -c CMD` on the host, in nono's working directory, with nono's
//! `PATH`, and it runs again whenever its cached value expires, so a file it names that the
//! sandbox can write (or create) is code the sandbox gets to run outside. This is a careful
//! reading, not a shell: quotes and backslashes are honoured, lists and pipelines (`;`, `&&`,
//! `||`, `|`, `&`) are split into commands, redirection targets are files, `sh -c '...'` is
//! read again; command substitution and variables other than a leading `~` are not expanded.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What a command line is looked up with: the values of the process that runs it.
#[derive(Debug, Clone)]
pub(crate) struct Lookup {
    /// `PATH` (unset: the shell's default, which holds only system directories).
    pub path: Option<OsString>,
    /// The working directory the command runs in (relative names and `PATH` entries).
    pub cwd: PathBuf,
    /// `~`.
    pub home: Option<PathBuf>,
}

/// Why a file matters to the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// The program (or a script the program is told to run) itself.
    Program,
    /// Where a `PATH` search for `name` looks before it reaches the program: a file of that
    /// name placed there would run instead.
    PathCandidate(String),
    /// A file named on the command line (an argument or a redirection).
    Argument,
}

/// A file the command depends on; relative paths are relative to [`Lookup::cwd`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandFile {
    /// The file.
    pub path: PathBuf,
    /// How the command uses it.
    pub role: Role,
}

/// How deep `sh -c '...'` is read again.
const MAX_NESTING: usize = 4;

/// Programs that run their first operand as a script.
const INTERPRETERS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "python", "perl", "ruby", "node", "deno",
    "bun", "php", "lua", "tclsh",
];

/// Shells, whose `-c` argument is itself a command line.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh"];

/// Words that run the word after them (after their options and, for `env`, assignments).
const WRAPPERS: &[&str] = &["exec", "command", "env", "nohup", "nice", "time", "builtin"];

/// The [`WRAPPERS`] that are shell builtins rather than programs found through `PATH`.
const BUILTIN_WRAPPERS: &[&str] = &["exec", "command", "builtin", "time"];

/// Every file `cmd` runs or names, in order of appearance.
pub(crate) fn command_files(cmd: &str, lookup: &Lookup) -> Vec<CommandFile> {
    let mut out = Vec::new();
    read_line(cmd, lookup, 0, &mut out);
    out
}

fn read_line(cmd: &str, lookup: &Lookup, depth: usize, out: &mut Vec<CommandFile>) {
    let mut words = Vec::new();
    for token in tokens(cmd) {
        match token {
            Token::Op(op) if op.starts_with(['<', '>']) => words.push(Word::Redirect),
            Token::Op(_) => {
                read_simple(&words, lookup, depth, out);
                words.clear();
            }
            Token::Word(w) => words.push(Word::Text(w)),
        }
    }
    read_simple(&words, lookup, depth, out);
}

#[derive(Debug)]
enum Word {
    Text(String),
    /// `<`, `>`, `>>`, ...: the next word is a file.
    Redirect,
}

/// One simple command: `[VAR=value]... program args... [>file]`.
fn read_simple(words: &[Word], lookup: &Lookup, depth: usize, out: &mut Vec<CommandFile>) {
    let mut args = Vec::new();
    let mut redirect = false;
    for w in words {
        match w {
            Word::Redirect => redirect = true,
            Word::Text(t) if redirect => {
                redirect = false;
                push(out, expand_tilde(t, lookup), Role::Argument);
            }
            Word::Text(t) => args.push(t.as_str()),
        }
    }
    let mut rest = args
        .iter()
        .copied()
        .skip_while(|w| is_assignment(w))
        .peekable();
    // Wrappers (`env FOO=1 prog`, `exec prog`) run the word after their options.
    while let Some(w) = rest.peek().copied() {
        if !WRAPPERS.contains(&w) {
            break;
        }
        rest.next();
        if !BUILTIN_WRAPPERS.contains(&w) {
            run_lookup(w, lookup, out);
        }
        while rest
            .peek()
            .is_some_and(|w| w.starts_with('-') || is_assignment(w))
        {
            rest.next();
        }
    }
    let Some(program) = rest.next() else {
        return;
    };
    let operands: Vec<&str> = rest.collect();
    // `. FILE` and `source FILE` run FILE, searched in PATH when it has no slash.
    let (program, operands) = match (program, operands.split_first()) {
        ("." | "source", Some((file, more))) => (*file, more.to_vec()),
        _ => (program, operands),
    };
    run_lookup(program, lookup, out);
    let base = program_name(program);
    let mut inline = false;
    let mut script_seen = !INTERPRETERS.contains(&base.as_str());
    for w in &operands {
        if inline {
            // The word after `sh -c` is a command line of its own.
            if SHELLS.contains(&base.as_str()) && depth < MAX_NESTING {
                read_line(w, lookup, depth + 1, out);
            }
            inline = false;
            script_seen = true;
            continue;
        }
        if !script_seen {
            if matches!(
                *w,
                "-c" | "-e" | "-E" | "-m" | "-r" | "--eval" | "--command"
            ) {
                inline = true;
                continue;
            }
            if !w.starts_with('-') {
                script_seen = true;
                push(out, expand_tilde(w, lookup), Role::Program);
                continue;
            }
        }
        // `--key=/path` names the path too.
        let value = w
            .strip_prefix('-')
            .and_then(|o| o.split_once('=').map(|(_, v)| v))
            .unwrap_or(w);
        if value.contains('/') && !value.contains("://") {
            push(out, expand_tilde(value, lookup), Role::Argument);
        }
    }
}

/// The program as the shell finds it: a path when it has a slash, else the first executable
/// of that name along `PATH`, with every place searched before it.
fn run_lookup(program: &str, lookup: &Lookup, out: &mut Vec<CommandFile>) {
    let program_path = expand_tilde(program, lookup);
    if program.contains('/') {
        push(out, program_path, Role::Program);
        return;
    }
    let Some(path) = &lookup.path else {
        return;
    };
    for dir in std::env::split_paths(path) {
        // An empty entry is the working directory, a relative one is taken from it.
        let candidate = lookup.cwd.join(dir).join(program);
        if is_executable(&candidate) {
            push(out, candidate, Role::Program);
            return;
        }
        push(out, candidate, Role::PathCandidate(program.to_string()));
    }
}

fn push(out: &mut Vec<CommandFile>, path: PathBuf, role: Role) {
    if !out.iter().any(|f| f.path == path) {
        out.push(CommandFile { path, role });
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `python3.12` → `python`: the interpreter a program name is.
fn program_name(program: &str) -> String {
    let base = program.rsplit('/').next().unwrap_or(program);
    let trimmed = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    if trimmed.is_empty() {
        base.to_string()
    } else {
        trimmed.to_string()
    }
}

fn is_assignment(w: &str) -> bool {
    w.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && crate::credentials::is_env_name(name) && !w.starts_with('-')
    })
}

fn expand_tilde(w: &str, lookup: &Lookup) -> PathBuf {
    match (w.strip_prefix("~/"), &lookup.home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if w == "~" => lookup.home.clone().unwrap_or_else(|| PathBuf::from(w)),
        _ => PathBuf::from(w),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    /// An unquoted operator: `;`, `&`, `&&`, `|`, `||`, `<`, `>`, `>>`, `(`, `)`, a newline.
    Op(String),
}

/// Splits a command line into words and operators, honouring quotes and backslashes.
fn tokens(cmd: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = cmd.chars().peekable();
    let flush = |out: &mut Vec<Token>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            out.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                word.push(n);
                            }
                        }
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            ';' | '&' | '|' | '<' | '>' | '(' | ')' | '\n' => {
                flush(&mut out, &mut word, &mut in_word);
                let mut op = c.to_string();
                if let Some(&n) = chars.peek() {
                    if (n == c && matches!(c, '&' | '|' | '>' | '<')) || (c == '>' && n == '|') {
                        op.push(n);
                        chars.next();
                    }
                }
                out.push(Token::Op(op));
            }
            c if c.is_whitespace() => flush(&mut out, &mut word, &mut in_word),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    flush(&mut out, &mut word, &mut in_word);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{env_in, write};

    fn lookup(path: &str, cwd: &Path) -> Lookup {
        Lookup {
            path: Some(path.into()),
            cwd: cwd.to_path_buf(),
            home: Some("/h".into()),
        }
    }

    fn paths(cmd: &str, l: &Lookup) -> Vec<PathBuf> {
        command_files(cmd, l).into_iter().map(|f| f.path).collect()
    }

    fn exe(p: &Path) {
        use std::os::unix::fs::PermissionsExt;
        write(p, "#!/bin/sh\n");
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn tokens_honour_quotes_and_split_operators() {
        let w = |s: &str| Token::Word(s.into());
        let o = |s: &str| Token::Op(s.into());
        assert_eq!(
            tokens(r#"a 'b c' "d\"e" f\ g|h&&i>>j"#),
            [
                w("a"),
                w("b c"),
                w("d\"e"),
                w("f g"),
                o("|"),
                w("h"),
                o("&&"),
                w("i"),
                o(">>"),
                w("j")
            ]
        );
    }

    #[test]
    fn a_bare_program_is_found_along_path_with_every_place_searched_before() {
        let (t, _env) = env_in("cmd-path");
        exe(&t.join("sys/getkey"));
        let l = lookup(
            &format!("{0}/early:rel:{0}/sys:{0}/late", t.display()),
            &t.join("cwd"),
        );
        let files = command_files("getkey --quiet", &l);
        assert_eq!(
            files,
            [
                CommandFile {
                    path: t.join("early/getkey"),
                    role: Role::PathCandidate("getkey".into())
                },
                CommandFile {
                    path: t.join("cwd/rel/getkey"),
                    role: Role::PathCandidate("getkey".into())
                },
                CommandFile {
                    path: t.join("sys/getkey"),
                    role: Role::Program
                },
            ]
        );
        // Not found anywhere: every directory of PATH is a place it could appear.
        assert_eq!(paths("nothere", &l).len(), 4);
    }

    #[test]
    fn scripts_arguments_redirections_and_nested_shells_are_files() {
        let l = lookup("", Path::new("/w"));
        assert_eq!(paths("/opt/get-key", &l), [PathBuf::from("/opt/get-key")]);
        assert_eq!(
            paths("sh get-key.sh --out=/tmp/x op://vault/key", &l),
            [
                PathBuf::from("/w/sh"),
                PathBuf::from("get-key.sh"),
                PathBuf::from("/tmp/x")
            ]
        );
        assert!(paths("python3.12 -u ~/bin/k.py", &l).contains(&PathBuf::from("/h/bin/k.py")));
        let mut got = paths("FOO=1 env -i BAR=2 ./k <./in.txt | /usr/bin/head -1", &l);
        let mut want = ["./in.txt", "./k", "/usr/bin/head", "/w/env"].map(PathBuf::from);
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(
            paths("/bin/sh -c 'cat ./secret; . ./lib.sh'", &l),
            ["/bin/sh", "/w/cat", "./secret", "./lib.sh"].map(PathBuf::from)
        );
        // Inline code is not a script path.
        assert_eq!(
            paths("/usr/bin/python3 -c 'print(1)'", &l),
            [PathBuf::from("/usr/bin/python3")]
        );
    }
}
