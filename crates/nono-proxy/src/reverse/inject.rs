//! Phantom-token checks and credential injection, as pure functions over a request's headers,
//! path and query so every inject mode is unit-tested without a network.
//!
//! The client holds only a route's phantom token; it must present it exactly where the real
//! credential would go. [`authenticate`] checks that (in constant time), [`inject`] replaces it
//! with the real credential.

use base64::Engine;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::route::InjectMode;
use crate::token::SessionToken;

/// Header that may carry the session token instead of a phantom.
pub const NONO_TOKEN_HEADER: &str = "x-nono-token";
/// Prefix of every phantom token, so one is recognisable in a client's configuration.
pub const PHANTOM_PREFIX: &str = "nono_phantom_";

/// Characters left alone when a credential is written into a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A fresh phantom: the prefix and 192 random bits in hex.
pub fn generate_phantom() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 24]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    let mut s = Zeroizing::new(String::with_capacity(PHANTOM_PREFIX.len() + 48));
    s.push_str(PHANTOM_PREFIX);
    for b in bytes.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Why a request cannot carry the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectError {
    /// `url_path`: the path does not contain the pattern with the phantom in it.
    PlaceholderMissing,
    /// The credential cannot be written into a header.
    BadCredential,
}

impl InjectError {
    /// Audit reason.
    pub fn as_str(self) -> &'static str {
        match self {
            InjectError::PlaceholderMissing => "credential_placeholder_missing",
            InjectError::BadCredential => "credential_not_header_safe",
        }
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

/// `prefix{}suffix` matched against a value: affixes case-insensitively, the middle in
/// constant time.
fn template_matches(format: &str, value: &[u8], phantom: &str) -> bool {
    let Some((prefix, suffix)) = format.split_once("{}") else {
        return false;
    };
    if value.len() != prefix.len() + phantom.len() + suffix.len() {
        return false;
    }
    let (p, rest) = value.split_at(prefix.len());
    let (mid, s) = rest.split_at(phantom.len());
    p.eq_ignore_ascii_case(prefix.as_bytes())
        && s.eq_ignore_ascii_case(suffix.as_bytes())
        && ct_eq(mid, phantom.as_bytes())
}

/// User and password of an `Authorization: Basic` value.
fn basic_credentials(value: &[u8]) -> Option<(String, Zeroizing<Vec<u8>>)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, b64) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?,
    );
    let i = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..i].to_vec()).ok()?;
    Some((user, Zeroizing::new(decoded[i + 1..].to_vec())))
}

/// Query pairs whose decoded name is `name`, decoded values.
fn query_values<'a>(
    query: &'a str,
    name: &'a str,
) -> impl Iterator<Item = Zeroizing<Vec<u8>>> + 'a {
    query.split('&').filter_map(move |pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode_str(&k.replace('+', " "))
            .decode_utf8()
            .ok()?
            .into_owned();
        (k == name).then(|| Zeroizing::new(percent_decode_str(v).collect::<Vec<u8>>()))
    })
}

/// Whether the request carries `phantom` where `mode` puts the credential, or the session
/// token in `X-Nono-Token`.
pub fn authenticate(
    mode: &InjectMode,
    phantom: &str,
    session: Option<&SessionToken>,
    headers: &HeaderMap,
    path: &str,
    query: Option<&str>,
) -> bool {
    if let Some(t) = session {
        if headers
            .get_all(NONO_TOKEN_HEADER)
            .iter()
            .any(|v| t.verify(v.as_bytes()))
        {
            return true;
        }
    }
    match mode {
        InjectMode::Header { name, format } => headers
            .get_all(name.as_str())
            .iter()
            .any(|v| template_matches(format, v.as_bytes(), phantom)),
        InjectMode::UrlPath { pattern, .. } => locate_phantom(path, pattern, phantom).is_some(),
        InjectMode::QueryParam { name } => {
            query.is_some_and(|q| query_values(q, name).any(|v| ct_eq(&v, phantom.as_bytes())))
        }
        InjectMode::BasicAuth => headers
            .get_all(AUTHORIZATION)
            .iter()
            .filter_map(|v| basic_credentials(v.as_bytes()))
            .any(|(_, pass)| ct_eq(&pass, phantom.as_bytes())),
    }
}

/// Where `pattern` (`pre{}post`) with `phantom` in place of `{}` occurs in `path`, as the
/// byte range of the whole match. Only the phantom's bytes are compared, in constant time;
/// the search itself depends on the public `pre` and `post` alone.
fn locate_phantom(path: &str, pattern: &str, phantom: &str) -> Option<(usize, usize)> {
    let (pre, post) = pattern.split_once("{}")?;
    let (bytes, pre, post) = (path.as_bytes(), pre.as_bytes(), post.as_bytes());
    for start in 0..=bytes.len() {
        let Some(rest) = bytes.get(start..) else {
            break;
        };
        if !rest.starts_with(pre) {
            continue;
        }
        let token_at = start + pre.len();
        let token_end = token_at + phantom.len();
        let token = bytes.get(token_at..token_end);
        let followed = bytes
            .get(token_end..)
            .is_some_and(|after| after.starts_with(post));
        if token.is_some_and(|t| ct_eq(t, phantom.as_bytes())) && followed {
            return Some((start, token_end + post.len()));
        }
    }
    None
}

/// Shortest credential [`scrub_response_headers`] looks for.
pub const SCRUB_MIN_LEN: usize = 8;

/// Fewest base64 characters, fixed by the secret's bits alone, worth searching for: shorter
/// runs turn up by chance in ordinary base64. A secret of [`SCRUB_MIN_LEN`] bytes gives ten.
const BASE64_MIN_CORE: usize = 8;

/// Replaces, in every response header, each spelling of `secret` with `phantom`, so an
/// upstream that echoes the credential back (a redirect's `Location`, a `Link` for the next
/// page, a `WWW-Authenticate` or debug header quoting the request) cannot hand the client the
/// real credential. The spellings caught:
///
/// - **Byte by byte**, each byte in any of these forms, mixed freely: as itself, an ASCII
///   letter in either case; `%XX` (either hex case); `+` for a space; a JSON string escape,
///   `\/`, `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, or `\uXXXX` (either hex case) for an
///   ASCII byte. So percent-encoded, JSON-escaped, upper- and lower-cased echoes all match.
/// - **Whole**, ASCII case ignored: the secret as is, query-encoded and path-encoded as the
///   inject modes send it. These catch a secret whose own text holds an escape of `%` or `\`
///   (`%25`, `\\`, `\u005c`), which the byte reading takes for the escaped byte.
/// - **Base64**, standard or URL-safe alphabet, padded or not, with the secret at any byte
///   offset of the encoded data (`Basic base64(user:secret)` among them). The characters that
///   depend on the secret's bits alone are searched for, case kept, each also as `%XX` or a
///   JSON escape; the whole run of base64 characters around them, trailing `=` included, is
///   replaced, because its edge characters carry some of the secret's bits.
///
/// Where two spellings overlap, the union is replaced, so no fragment of either survives.
/// Letters match in either case, so text that differs from the secret only in case is
/// replaced too, as is base64 differing only in the few bits of the secret's first and last
/// byte that its partial edge characters hold; that costs a header substring, never the secret.
///
/// Not caught: nested encodings (percent-encoded JSON, double percent-encoding, base64 of a
/// case-changed or escaped secret), `\u` escapes of non-ASCII characters, other encodings
/// (hex, base32, HTML entities), a secret split across values or headers, and a secret whose
/// text holds `%25`, `\\` or `\u005c` spelled neither whole nor fully byte by byte.
///
/// Secrets shorter than [`SCRUB_MIN_LEN`] are left alone: text that short turns up in
/// ordinary headers, and no real API key is that short. A value that no longer forms a header
/// value once scrubbed is dropped; values without the secret are kept as they were.
pub fn scrub_response_headers(headers: &mut HeaderMap, secret: &str, phantom: &str) {
    if secret.len() < SCRUB_MIN_LEN {
        return;
    }
    let exact: Vec<Zeroizing<String>> = vec![
        Zeroizing::new(secret.to_string()),
        Zeroizing::new(utf8_percent_encode(secret, QUERY_VALUE).to_string()),
        Zeroizing::new(crate::endpoint::encode_segment(secret)),
    ];
    let base64 = base64_cores(secret.as_bytes());
    let secret = Spellings::new(secret.as_bytes(), &exact, &base64);
    let names: Vec<HeaderName> = headers.keys().cloned().collect();
    for name in names {
        let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        let cleaned: Vec<Option<Zeroizing<Vec<u8>>>> = values
            .iter()
            .map(|v| scrubbed(v.as_bytes(), &secret, phantom))
            .collect();
        if cleaned.iter().all(Option::is_none) {
            continue;
        }
        headers.remove(&name);
        for (v, clean) in values.into_iter().zip(cleaned) {
            let Some(clean) = clean else {
                headers.append(name.clone(), v);
                continue;
            };
            match HeaderValue::from_bytes(&clean) {
                Ok(mut new) => {
                    new.set_sensitive(v.is_sensitive());
                    headers.append(name.clone(), new);
                }
                // Not representable any more: drop it rather than pass the secret on.
                Err(_) => continue,
            }
        }
    }
}

/// A secret to find: its bytes, the exact spellings the inject modes send, and the base64
/// characters fixed by its bits (see [`base64_cores`]).
struct Spellings<'a> {
    bytes: &'a [u8],
    exact: &'a [Zeroizing<String>],
    base64: &'a [Zeroizing<Vec<u8>>],
    /// Bytes any spelling can start with: most positions of a header fail this one lookup,
    /// which keeps the scrub cheap on the responses that hold no secret.
    first: [bool; 256],
}

impl<'a> Spellings<'a> {
    fn new(
        bytes: &'a [u8],
        exact: &'a [Zeroizing<String>],
        base64: &'a [Zeroizing<Vec<u8>>],
    ) -> Self {
        let mut first = [false; 256];
        let mut mark = |b: u8| {
            first[usize::from(b.to_ascii_lowercase())] = true;
            first[usize::from(b.to_ascii_uppercase())] = true;
        };
        // Escapes, and `+` for a space, stand for any first byte.
        for b in [b'%', b'\\', b'+'] {
            mark(b);
        }
        let firsts = exact
            .iter()
            .map(|e| e.as_bytes())
            .chain(base64.iter().map(|c| c.as_slice()));
        for spelled in std::iter::once(bytes).chain(firsts) {
            if let Some(&b) = spelled.first() {
                mark(b);
            }
        }
        Spellings {
            bytes,
            exact,
            base64,
            first,
        }
    }
}

/// For each offset of the secret in base64'd data (mod 3) and each alphabet, the characters
/// that depend on the secret's bits alone. The character at either end also carries bits of
/// whatever surrounds the secret, so it differs from one message to the next.
fn base64_cores(secret: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut cores: Vec<Zeroizing<Vec<u8>>> = Vec::with_capacity(6);
    for lead in 0..3 {
        // Sized up front so no reallocation leaves an unzeroed copy behind.
        let mut data = Zeroizing::new(Vec::with_capacity(lead + secret.len()));
        data.resize(lead, 0);
        data.extend_from_slice(secret);
        let text = Zeroizing::new(
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(data.as_slice()),
        );
        // Character i holds bits 6i..6i+6, the secret bits 8*lead..8*(lead+len).
        let first = (8 * lead).div_ceil(6);
        let last = 8 * (lead + secret.len()) / 6;
        let Some(core) = text.as_bytes().get(first..last) else {
            continue;
        };
        if core.len() < BASE64_MIN_CORE {
            continue;
        }
        let url_safe = core.iter().map(|&c| match c {
            b'+' => b'-',
            b'/' => b'_',
            c => c,
        });
        for spelled in [
            Zeroizing::new(core.to_vec()),
            Zeroizing::new(url_safe.collect()),
        ] {
            if !cores.iter().any(|c| c.as_slice() == spelled.as_slice()) {
                cores.push(spelled);
            }
        }
    }
    cores
}

/// `value` with every spelling of the secret replaced by `phantom`, or `None` if it holds none.
fn scrubbed(value: &[u8], secret: &Spellings<'_>, phantom: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut found = Some(find_spelled(value, secret, 0)?);
    let mut clean = Zeroizing::new(Vec::with_capacity(value.len() + phantom.len()));
    let mut from = 0;
    while let Some((start, end)) = found {
        clean.extend_from_slice(&value[from..start]);
        clean.extend_from_slice(phantom.as_bytes());
        from = end;
        found = find_spelled(value, secret, from);
    }
    clean.extend_from_slice(&value[from..]);
    Some(clean)
}

/// The first range at or after `from` to replace: a spelling read from the leftmost position
/// that has one, widened over every spelling that starts inside it.
fn find_spelled(value: &[u8], secret: &Spellings<'_>, from: usize) -> Option<(usize, usize)> {
    let mut run = None;
    let (at, (start, mut end)) = (from..value.len())
        .find_map(|at| spelled_at(value, secret, at, from, &mut run).map(|range| (at, range)))?;
    // An overlapping spelling would otherwise survive in part past `end`. Each position is
    // still read once, here instead of by the caller's next search.
    let mut inner = at + 1;
    while inner < end {
        if let Some((_, e)) = spelled_at(value, secret, inner, inner, &mut run) {
            end = end.max(e);
        }
        inner += 1;
    }
    Some((start, end))
}

/// The range to replace for the spellings read from `value[at..]`, if any: for base64, the
/// enclosing run, not reaching back before `floor`. `run` remembers the last run's extent,
/// so that further matches inside one long run do not rescan it.
fn spelled_at(
    value: &[u8],
    secret: &Spellings<'_>,
    at: usize,
    floor: usize,
    run: &mut Option<(usize, usize)>,
) -> Option<(usize, usize)> {
    if !value.get(at).is_some_and(|&b| secret.first[usize::from(b)]) {
        return None;
    }
    let widen = |hit: Option<(usize, usize)>, (s, e): (usize, usize)| {
        Some(hit.map_or((s, e), |(hs, he)| (hs.min(s), he.max(e))))
    };
    let mut hit = per_byte(value, secret.bytes, at, true).map(|end| (at, end));
    for e in secret.exact {
        let e = e.as_bytes();
        if value
            .get(at..at + e.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(e))
        {
            hit = widen(hit, (at, at + e.len()));
        }
    }
    let core_end = secret
        .base64
        .iter()
        .find_map(|core| per_byte(value, core, at, false));
    if let Some(core_end) = core_end {
        let end = match *run {
            Some((s, e)) if s <= at && core_end <= e => e,
            _ => {
                let e = run_end(value, core_end);
                *run = Some((at, e));
                e
            }
        };
        hit = widen(hit, (run_start(value, at, floor), end));
    }
    hit
}

/// The end of `want` read byte by byte from `value[start..]`, if it is there: each byte as
/// itself (either case for a letter if `fold`), escaped (see [`escape`]; preferred where it
/// stands for the byte), or `+` for a space.
fn per_byte(value: &[u8], want: &[u8], start: usize, fold: bool) -> Option<usize> {
    let mut at = start;
    for &w in want {
        let rest = value.get(at..)?;
        let same = |b: u8| b == w || (fold && b.eq_ignore_ascii_case(&w));
        at += match (escape(rest), rest.first()) {
            (Some((b, len)), _) if same(b) => len,
            (_, Some(&b)) if same(b) => 1,
            (_, Some(b'+')) if w == b' ' => 1,
            _ => return None,
        };
    }
    Some(at)
}

/// The byte an escape at the start of `rest` stands for, and the escape's length: `%XX`, or a
/// JSON string escape (`\uXXXX` for an ASCII byte, `\/`, `\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
/// `\t`).
fn escape(rest: &[u8]) -> Option<(u8, usize)> {
    match rest {
        [b'%', hi, lo, ..] => Some((hex_pair(*hi, *lo)?, 3)),
        [b'\\', b'u', a, b, c, d, ..] => {
            let byte = hex_pair(*c, *d)?;
            (hex_pair(*a, *b)? == 0 && byte.is_ascii()).then_some((byte, 6))
        }
        [b'\\', c, ..] => {
            let byte = match c {
                b'/' | b'"' | b'\\' => *c,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                _ => return None,
            };
            Some((byte, 2))
        }
        _ => None,
    }
}

fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    u8::try_from(digit(hi)? * 16 + digit(lo)?).ok()
}

/// Either base64 alphabet, padding aside.
fn is_base64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_')
}

/// The base64 character or `=` at the start of `rest`, as itself or escaped, and its length.
fn base64_unit(rest: &[u8]) -> Option<(u8, usize)> {
    let (c, len) = escape(rest).or_else(|| rest.first().map(|&c| (c, 1)))?;
    (is_base64(c) || c == b'=').then_some((c, len))
}

/// Where the run of base64 characters that ends at `at` begins, not before `floor`. `=` stops
/// it: padding ends an encoding, so what precedes it holds none of the secret's bits.
fn run_start(value: &[u8], mut at: usize, floor: usize) -> usize {
    'unit: while at > floor {
        for len in [6, 3, 2, 1] {
            let Some(unit) = at
                .checked_sub(len)
                .filter(|&s| s >= floor)
                .and_then(|s| value.get(s..at))
            else {
                continue;
            };
            if base64_unit(unit).is_some_and(|(c, l)| l == len && c != b'=') {
                at -= len;
                continue 'unit;
            }
        }
        break;
    }
    at
}

/// Where the run of base64 characters from `at` ends, at most two `=` of padding included.
fn run_end(value: &[u8], mut at: usize) -> usize {
    let mut pads = 0;
    while let Some((c, len)) = value.get(at..).and_then(base64_unit) {
        if c == b'=' {
            if pads == 2 {
                break;
            }
            pads += 1;
        } else if pads > 0 {
            break;
        }
        at += len;
    }
    at
}

fn sensitive(value: &str) -> Result<HeaderValue, InjectError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| InjectError::BadCredential)?;
    v.set_sensitive(true);
    Ok(v)
}

/// Removes the session token and the phantom, and writes `secret` where `mode` says. `path` is
/// the encoded upstream path, `query` the raw query.
pub fn inject(
    mode: &InjectMode,
    phantom: &str,
    secret: &str,
    headers: &mut HeaderMap,
    path: &mut String,
    query: &mut Option<String>,
) -> Result<(), InjectError> {
    headers.remove(NONO_TOKEN_HEADER);
    match mode {
        InjectMode::Header { name, format } => {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| InjectError::BadCredential)?;
            let value = Zeroizing::new(format.replacen("{}", secret, 1));
            headers.remove(&name);
            headers.insert(name, sensitive(&value)?);
        }
        InjectMode::UrlPath {
            pattern,
            replacement,
        } => {
            let Some((at, end)) = locate_phantom(path, pattern, phantom) else {
                return Err(InjectError::PlaceholderMissing);
            };
            let encoded: Zeroizing<String> =
                Zeroizing::new(crate::endpoint::encode_segment(secret));
            let mut out = Zeroizing::new(String::with_capacity(path.len() + encoded.len()));
            out.push_str(&path[..at]);
            out.push_str(&replacement.replacen("{}", &encoded, 1));
            out.push_str(&path[end..]);
            path.clear();
            path.push_str(&out);
        }
        InjectMode::QueryParam { name } => {
            let mut out = Zeroizing::new(String::new());
            if let Some(q) = query.as_deref() {
                for pair in q.split('&').filter(|p| !p.is_empty()) {
                    let k = pair.split_once('=').map_or(pair, |(k, _)| k);
                    let same = percent_decode_str(&k.replace('+', " "))
                        .decode_utf8()
                        .is_ok_and(|k| k == *name);
                    if !same {
                        out.push_str(pair);
                        out.push('&');
                    }
                }
            }
            out.push_str(name);
            out.push('=');
            out.extend(utf8_percent_encode(secret, QUERY_VALUE));
            *query = Some(out.to_string());
        }
        InjectMode::BasicAuth => {
            let user = headers
                .get_all(AUTHORIZATION)
                .iter()
                .find_map(|v| basic_credentials(v.as_bytes()))
                .map(|(u, _)| u)
                .unwrap_or_default();
            let pair = if secret.contains(':') {
                Zeroizing::new(secret.to_string())
            } else {
                Zeroizing::new(format!("{user}:{secret}"))
            };
            let value = Zeroizing::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
            ));
            headers.remove(AUTHORIZATION);
            headers.insert(AUTHORIZATION, sensitive(&value)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PH: &str = "nono_phantom_abc";
    const SECRET: &str = "sk-real/+=:x";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn bearer() -> InjectMode {
        InjectMode::Header {
            name: "Authorization".into(),
            format: "Bearer {}".into(),
        }
    }

    #[test]
    fn phantoms_are_random_and_prefixed() {
        let a = generate_phantom();
        assert!(a.starts_with(PHANTOM_PREFIX) && a.len() == PHANTOM_PREFIX.len() + 48);
        assert_ne!(*a, *generate_phantom());
    }

    #[test]
    fn header_mode_needs_the_exact_phantom() {
        let m = bearer();
        assert!(authenticate(
            &m,
            PH,
            None,
            &headers(&[("authorization", "Bearer nono_phantom_abc")]),
            "/",
            None
        ));
        assert!(authenticate(
            &m,
            PH,
            None,
            &headers(&[("authorization", "bearer nono_phantom_abc")]),
            "/",
            None
        ));
        for wrong in [
            "Bearer nono_phantom_abd",
            "Bearer nono_phantom_ab",
            "Token nono_phantom_abc",
            "nono_phantom_abc",
        ] {
            assert!(
                !authenticate(
                    &m,
                    PH,
                    None,
                    &headers(&[("authorization", wrong)]),
                    "/",
                    None
                ),
                "{wrong}"
            );
        }
        assert!(!authenticate(
            &m,
            PH,
            None,
            &headers(&[("x-api-key", PH)]),
            "/",
            None
        ));
        let gh = InjectMode::Header {
            name: "Authorization".into(),
            format: "token {}".into(),
        };
        assert!(authenticate(
            &gh,
            PH,
            None,
            &headers(&[("authorization", "token nono_phantom_abc")]),
            "/",
            None
        ));
    }

    #[test]
    fn session_token_header_authenticates_any_mode() {
        let t = SessionToken::from_secret(Zeroizing::new("tok".into()));
        assert!(authenticate(
            &bearer(),
            PH,
            Some(&t),
            &headers(&[("x-nono-token", "tok")]),
            "/",
            None
        ));
        assert!(!authenticate(
            &bearer(),
            PH,
            Some(&t),
            &headers(&[("x-nono-token", "tok2")]),
            "/",
            None
        ));
        assert!(!authenticate(
            &bearer(),
            PH,
            None,
            &headers(&[("x-nono-token", "tok")]),
            "/",
            None
        ));
    }

    #[test]
    fn header_injection_replaces_every_value() {
        let mut h = headers(&[
            ("authorization", "Bearer nono_phantom_abc"),
            ("authorization", "Bearer other"),
            ("x-nono-token", "t"),
        ]);
        let (mut p, mut q) = ("/v1".to_string(), None);
        inject(&bearer(), PH, SECRET, &mut h, &mut p, &mut q).unwrap();
        let all: Vec<_> = h.get_all("authorization").iter().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0], &format!("Bearer {SECRET}"));
        assert!(all[0].is_sensitive());
        assert!(!h.contains_key("x-nono-token"));
    }

    #[test]
    fn url_path_mode_swaps_the_fragment() {
        let m = InjectMode::UrlPath {
            pattern: "/bot{}/".into(),
            replacement: "/bot{}/".into(),
        };
        let mut path = format!("/bot{PH}/sendMessage");
        assert!(authenticate(&m, PH, None, &HeaderMap::new(), &path, None));
        assert!(!authenticate(
            &m,
            PH,
            None,
            &HeaderMap::new(),
            "/botX/sendMessage",
            None
        ));
        let mut q = None;
        inject(&m, PH, "123:abc", &mut HeaderMap::new(), &mut path, &mut q).unwrap();
        assert_eq!(path, "/bot123:abc/sendMessage");
        let mut other = "/sendMessage".to_string();
        assert_eq!(
            inject(&m, PH, "s", &mut HeaderMap::new(), &mut other, &mut q),
            Err(InjectError::PlaceholderMissing)
        );
    }

    #[test]
    fn query_mode_replaces_the_parameter_and_keeps_others() {
        let m = InjectMode::QueryParam { name: "key".into() };
        let raw = format!("alt=sse&key={PH}&x=%20y");
        assert!(authenticate(
            &m,
            PH,
            None,
            &HeaderMap::new(),
            "/",
            Some(&raw)
        ));
        assert!(!authenticate(
            &m,
            PH,
            None,
            &HeaderMap::new(),
            "/",
            Some("key=wrong")
        ));
        assert!(!authenticate(&m, PH, None, &HeaderMap::new(), "/", None));
        let mut q = Some(raw);
        inject(
            &m,
            PH,
            SECRET,
            &mut HeaderMap::new(),
            &mut "/".to_string(),
            &mut q,
        )
        .unwrap();
        let q = q.unwrap();
        assert_eq!(q, "alt=sse&x=%20y&key=sk-real%2F%2B%3D%3Ax");
        assert!(!q.contains(PH));
    }

    #[test]
    fn basic_auth_mode_keeps_the_user_and_swaps_the_password() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let m = InjectMode::BasicAuth;
        let mut h = headers(&[(
            "authorization",
            &format!("Basic {}", b64(&format!("git:{PH}"))),
        )]);
        assert!(authenticate(&m, PH, None, &h, "/", None));
        assert!(!authenticate(
            &m,
            PH,
            None,
            &headers(&[("authorization", &format!("Basic {}", b64("git:nope")))]),
            "/",
            None
        ));
        inject(&m, PH, "ghp_real", &mut h, &mut "/".to_string(), &mut None).unwrap();
        assert_eq!(
            h.get("authorization").unwrap(),
            &format!("Basic {}", b64("git:ghp_real"))
        );
        let mut h = HeaderMap::new();
        inject(&m, PH, "u:p", &mut h, &mut "/".to_string(), &mut None).unwrap();
        assert_eq!(
            h.get("authorization").unwrap(),
            &format!("Basic {}", b64("u:p"))
        );
    }

    #[test]
    fn the_path_phantom_is_found_only_whole_and_in_place() {
        let pat = "/bot{}/";
        assert_eq!(
            locate_phantom("/v1/botnono_phantom_abc/send", pat, PH),
            Some((3, 24))
        );
        assert_eq!(
            locate_phantom("/v1/botnono_phantom_abd/send", pat, PH),
            None
        );
        assert_eq!(locate_phantom("/v1/botnono_phantom_ab/send", pat, PH), None);
        assert_eq!(locate_phantom("/v1/botnono_phantom_abc", pat, PH), None);
        // A near miss before the real one does not hide it.
        assert_eq!(
            locate_phantom("/botx/botnono_phantom_abc/", pat, PH),
            Some((5, 26))
        );
    }

    #[test]
    fn response_headers_never_carry_the_secret_back() {
        let mut h = headers(&[
            (
                "location",
                "https://api.example/v1/x?key=sk-real%2F%2B%3D%3Ax&page=2",
            ),
            (
                "link",
                "<https://api.example/v1/bot sk-real/+=:x/next>; rel=next",
            ),
            ("x-echo", "sk-real%2F+=:x"),
            ("content-type", "application/json"),
        ]);
        scrub_response_headers(&mut h, SECRET, PH);
        let all: Vec<String> = h
            .iter()
            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        for line in &all {
            assert!(!line.contains("sk-real"), "{line}");
        }
        assert_eq!(
            h.get("location").unwrap(),
            "https://api.example/v1/x?key=nono_phantom_abc&page=2"
        );
        assert_eq!(h.get("content-type").unwrap(), "application/json");
        // Lower-case hex, partial encoding, and non-UTF-8 bytes kept as they were.
        let mut h = HeaderMap::new();
        h.append(
            "location",
            HeaderValue::from_static("/x?key=sk-real%2f%2b%3d%3ax"),
        );
        h.append("x-mixed", HeaderValue::from_static("sk-real%2F+=%3Ax"));
        h.append(
            "x-bytes",
            HeaderValue::from_bytes(b"\xe9 sk-real/+=:x").unwrap(),
        );
        scrub_response_headers(&mut h, SECRET, PH);
        assert_eq!(h.get("location").unwrap(), "/x?key=nono_phantom_abc");
        assert_eq!(h.get("x-mixed").unwrap(), "nono_phantom_abc");
        assert_eq!(
            h.get("x-bytes").unwrap().as_bytes(),
            b"\xe9 nono_phantom_abc"
        );
        // A secret holding `%`: sent as `%25`, also as literal text that looks encoded.
        for (secret, value) in [
            ("sk-ab%cd1234", "/x?k=sk-ab%25cd1234"),
            ("sk-ab%cd1234", "/x/sk-ab%25cd1234/y"),
            ("sk-%25-literal", "/x?k=sk-%25-literal"),
        ] {
            let mut h = HeaderMap::new();
            h.append("location", HeaderValue::from_str(value).unwrap());
            scrub_response_headers(&mut h, secret, PH);
            let out = h.get("location").unwrap().to_str().unwrap().to_string();
            assert!(
                out.contains(PH) && !out.contains("1234") && !out.contains("literal"),
                "{secret}: {out}"
            );
        }
        // A (test-sized) secret of a few letters would corrupt ordinary headers.
        let mut h = headers(&[("location", "https://elsewhere.invalid/")]);
        scrub_response_headers(&mut h, "s", PH);
        assert_eq!(h.get("location").unwrap(), "https://elsewhere.invalid/");
    }

    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::engine::GeneralPurpose;
    use rand::{Rng, SeedableRng};

    /// A secret whose base64 has both `+` and `/`, and which holds JSON-escaped bytes.
    const B64_SECRET: &str = "sk~~~?>?>real\"/\\key";
    const ENGINES: [(&str, &GeneralPurpose); 4] = [
        ("standard", &STANDARD),
        ("standard unpadded", &STANDARD_NO_PAD),
        ("url-safe", &URL_SAFE),
        ("url-safe unpadded", &URL_SAFE_NO_PAD),
    ];

    /// `value` in an `x-echo` header after scrubbing `secret`, `None` if it was dropped.
    fn scrub_one(value: &[u8], secret: &str) -> Option<Vec<u8>> {
        let mut h = HeaderMap::new();
        h.append("x-echo", HeaderValue::from_bytes(value).unwrap());
        scrub_response_headers(&mut h, secret, PH);
        h.get("x-echo").map(|v| v.as_bytes().to_vec())
    }

    fn scrub_str(value: &str, secret: &str) -> String {
        String::from_utf8(scrub_one(value.as_bytes(), secret).unwrap()).unwrap()
    }

    #[test]
    fn base64_of_the_secret_is_replaced_at_every_alignment() {
        let std = STANDARD.encode(B64_SECRET);
        assert!(std.contains('+') && std.contains('/'), "{std}");
        for lead in ["", "a", "ab", "abc", "user:"] {
            for trail in ["", "x", "xy", "xyz"] {
                let data = format!("{lead}{B64_SECRET}{trail}");
                for (engine_name, engine) in ENGINES {
                    let token = engine.encode(&data);
                    let value = format!("Basic realm=\"api\", echo={token}; next");
                    assert_eq!(
                        scrub_str(&value, B64_SECRET),
                        format!("Basic realm=\"api\", echo={PH}; next"),
                        "{engine_name} {data:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn basic_auth_echoed_by_the_upstream_is_replaced() {
        for secret in ["ghp_realtoken1", "ghp_realtoken12", "ghp_realtoken123"] {
            let basic = format!("Basic {}", STANDARD.encode(format!("git:{secret}")));
            for value in [
                format!("Basic realm=\"{basic}\""),
                format!("{{\"auth\":\"{basic}\"}}"),
                basic.clone(),
            ] {
                let out = scrub_str(&value, secret);
                assert_eq!(out, value.replace(&basic[6..], PH), "{secret}");
            }
        }
    }

    #[test]
    fn escaped_base64_is_replaced_as_one_token() {
        let token = STANDARD.encode(format!("u:{B64_SECRET}"));
        let json = token.replace('/', "\\/");
        let percent = token
            .replace('+', "%2B")
            .replace('/', "%2f")
            .replace('=', "%3D");
        for value in [
            format!("{{\"a\":\"{json}\"}}"),
            format!("/cb?t={percent}&x=1"),
        ] {
            let out = scrub_str(&value, B64_SECRET);
            assert!(out.contains(PH), "{value} -> {out}");
            assert!(!out.contains("%3D") && !out.contains("\\/"), "{out}");
        }
        assert_eq!(
            scrub_str(&format!("/cb?t={percent}&x=1"), B64_SECRET),
            format!("/cb?t={PH}&x=1")
        );
    }

    #[test]
    fn json_escaped_secret_is_replaced() {
        let secret = "sk/real\"q\\x";
        let short = "sk\\/real\\\"q\\\\x";
        let lower: String = secret.bytes().map(|b| format!("\\u{b:04x}")).collect();
        let upper: String = secret.bytes().map(|b| format!("\\u{b:04X}")).collect();
        let mixed = "\\u0073k\\/re\\u0041l\\u0022q\\\\x";
        for spelled in [short, lower.as_str(), upper.as_str(), mixed] {
            let value = format!("{{\"error\":\"bad key {spelled}\",\"code\":1}}");
            assert_eq!(
                scrub_str(&value, secret),
                format!("{{\"error\":\"bad key {PH}\",\"code\":1}}"),
                "{spelled}"
            );
        }
        // `\u` beyond ASCII is not a byte of the secret; `\U` is not JSON.
        for value in ["\\u0173k/real\"q\\x", "\\U0073k/real\"q\\x"] {
            assert_eq!(scrub_str(value, secret), value);
        }
    }

    #[test]
    fn upper_and_lower_cased_secrets_are_replaced() {
        let secret = "Sk-Live_AbCdEf1234";
        for spelled in [
            "SK-LIVE_ABCDEF1234",
            "sk-live_abcdef1234",
            "sK-lIVE_aBcDeF1234",
            "SK-LIVE%5FABCDEF1234",
            "%73k-live_abcdef1234",
        ] {
            assert_eq!(
                scrub_str(&format!("key={spelled}; ok"), secret),
                format!("key={PH}; ok"),
                "{spelled}"
            );
        }
        // A secret holding `%25` literally, echoed upper-cased whole.
        assert_eq!(scrub_str("SK-%25-LITERAL", "sk-%25-literal"), PH);
    }

    #[test]
    fn every_spelling_in_one_header_is_replaced() {
        let secret = B64_SECRET;
        let percent = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
        let json = serde_json::to_string(secret).unwrap();
        let json = &json[1..json.len() - 1];
        let parts = [
            secret.to_string(),
            secret.to_uppercase(),
            percent.to_lowercase(),
            json.to_string(),
            STANDARD.encode(secret),
            URL_SAFE_NO_PAD.encode(format!("x{secret}")),
            format!("Basic {}", STANDARD.encode(format!("me:{secret}"))),
        ];
        let value = parts.join(" | ");
        let out = scrub_str(&value, secret);
        let want = [PH; 6].join(" | ") + &format!(" | Basic {PH}");
        assert_eq!(out, want);
    }

    #[test]
    fn overlapping_spellings_leave_no_fragment() {
        assert_eq!(scrub_str("xabcabcabcaby", "abcabcab"), format!("x{PH}y"));
        // Base64 run straight into the literal secret: the run's end would cut it in two.
        let value = format!("{}{B64_SECRET}!", STANDARD_NO_PAD.encode(B64_SECRET));
        assert_eq!(scrub_str(&value, B64_SECRET), format!("{PH}!"));
        let value = format!("{B64_SECRET}{}!", STANDARD.encode(B64_SECRET));
        assert!(!scrub_str(&value, B64_SECRET).contains("real"));
    }

    #[test]
    fn headers_without_the_secret_are_left_byte_identical() {
        let secret = B64_SECRET;
        let mut near = secret.as_bytes().to_vec();
        // A high bit: the low ones of the last byte sit in a partial character, not searched.
        *near.last_mut().unwrap() ^= 0x40;
        let mut h = HeaderMap::new();
        for v in [
            "application/json; charset=utf-8",
            "%zz%4 \\u12 \\q \\u00e9 %C3%A9 +++ === ",
            "\"quoted \\\" string\"",
            &secret[..secret.len() - 1],
            &STANDARD.encode(&near),
            &STANDARD.encode(&secret.as_bytes()[1..]),
            &STANDARD.encode("an unrelated but long enough base64 payload"),
        ] {
            h.append("x-other", HeaderValue::from_str(v).unwrap());
        }
        h.append(
            "x-bytes",
            HeaderValue::from_bytes(b"\xe9\xff raw \x80").unwrap(),
        );
        let mut sensitive = HeaderValue::from_static("keep me");
        sensitive.set_sensitive(true);
        h.append("x-mixed", sensitive);
        h.append("x-mixed", HeaderValue::from_str(secret).unwrap());
        let before = h.clone();
        scrub_response_headers(&mut h, secret, PH);
        for name in ["x-other", "x-bytes"] {
            let a: Vec<_> = before.get_all(name).iter().collect();
            let b: Vec<_> = h.get_all(name).iter().collect();
            assert_eq!(a, b, "{name}");
        }
        let mixed: Vec<_> = h.get_all("x-mixed").iter().collect();
        assert_eq!(mixed, ["keep me", PH]);
        assert!(mixed[0].is_sensitive());
    }

    /// Decodes `%XX`, JSON escapes and, if `plus`, `+` as a space; written apart from the code
    /// under test so the two cannot share a mistake.
    fn unescape(v: &[u8], plus: bool) -> Vec<u8> {
        let hex = |s: &[u8]| {
            std::str::from_utf8(s)
                .ok()
                .and_then(|s| u32::from_str_radix(s, 16).ok())
        };
        let mut out = Vec::new();
        let mut i = 0;
        while i < v.len() {
            let rest = &v[i..];
            if rest[0] == b'%' && rest.len() >= 3 {
                if let Some(b) = hex(&rest[1..3]) {
                    out.push(b as u8);
                    i += 3;
                    continue;
                }
            }
            if rest.starts_with(b"\\u") && rest.len() >= 6 {
                if let Some(c) = hex(&rest[2..6]).filter(|&c| c < 0x80) {
                    out.push(c as u8);
                    i += 6;
                    continue;
                }
            }
            if rest[0] == b'\\' && rest.len() >= 2 {
                let c = match rest[1] {
                    b'b' => Some(8),
                    b'f' => Some(12),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    c @ (b'/' | b'"' | b'\\') => Some(c),
                    _ => None,
                };
                if let Some(c) = c {
                    out.push(c);
                    i += 2;
                    continue;
                }
            }
            let plain = if plus && rest[0] == b'+' {
                b' '
            } else {
                rest[0]
            };
            out.push(plain);
            i += 1;
        }
        out
    }

    /// Every maximal base64 run in `v`, decoded from each of its first four characters on.
    fn base64_decodings(v: &[u8]) -> Vec<Vec<u8>> {
        let lenient = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let mut out = Vec::new();
        let runs = v.split(|&c| !(c.is_ascii_alphanumeric() || b"+/-_=".contains(&c)));
        for run in runs {
            let run: Vec<u8> = run
                .iter()
                .filter(|&&c| c != b'=')
                .map(|&c| match c {
                    b'-' => b'+',
                    b'_' => b'/',
                    c => c,
                })
                .collect();
            for skip in 0..4.min(run.len()) {
                let mut chars = &run[skip..];
                if chars.len() % 4 == 1 {
                    chars = &chars[..chars.len() - 1];
                }
                out.push(lenient.decode(chars).unwrap());
            }
        }
        out
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    /// One random spelling of `secret` that the doc comment claims is caught.
    fn random_spelling(rng: &mut impl Rng, secret: &[u8]) -> Vec<u8> {
        if rng.gen_bool(0.5) {
            let mut out = Vec::new();
            for &b in secret {
                let form = rng.gen_range(0..6);
                match form {
                    0 => out.extend(format!("%{b:02X}").bytes()),
                    1 => out.extend(format!("%{b:02x}").bytes()),
                    2 => out.extend(format!("\\u{b:04x}").bytes()),
                    3 => out.extend(format!("\\u{b:04X}").bytes()),
                    _ if b == b'/' || b == b'"' || b == b'\\' => out.extend([b'\\', b]),
                    _ if b == b' ' && form == 4 => out.push(b'+'),
                    4 => out.push(b.to_ascii_uppercase()),
                    _ => out.push(b.to_ascii_lowercase()),
                }
            }
            return out;
        }
        let mut data: Vec<u8> = (0..rng.gen_range(0..6)).map(|_| rng.gen()).collect();
        data.extend_from_slice(secret);
        data.extend((0..rng.gen_range(0..6)).map(|_| rng.gen::<u8>()));
        let (_, engine) = ENGINES[rng.gen_range(0..ENGINES.len())];
        let text = engine.encode(&data);
        match rng.gen_range(0..3) {
            0 => text.replace('/', "\\/").into_bytes(),
            1 => text
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3d")
                .into_bytes(),
            _ => text.into_bytes(),
        }
    }

    #[test]
    fn random_secrets_never_survive_any_claimed_spelling() {
        let seed: u64 = rand::random();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let printable = |rng: &mut rand::rngs::StdRng| rng.gen_range(0x20u8..0x7f);
        for round in 0..3000 {
            let secret: String = loop {
                let len = rng.gen_range(SCRUB_MIN_LEN..40);
                let s: String = (0..len).map(|_| printable(&mut rng) as char).collect();
                // Documented gap: literal escapes of `%` or `\` inside the secret itself.
                let l = s.to_ascii_lowercase();
                if !l.contains("%25") && !l.contains("\\\\") && !l.contains("\\u005c") {
                    break s;
                }
            };
            let mut value = Vec::new();
            for _ in 0..rng.gen_range(1..4) {
                let filler = rng.gen_range(0..12);
                value.extend((0..filler).map(|_| printable(&mut rng)));
                value.extend(random_spelling(&mut rng, secret.as_bytes()));
            }
            value.extend((0..rng.gen_range(0..12)).map(|_| printable(&mut rng)));
            let ctx = format!(
                "seed {seed} round {round} secret {secret:?} value {:?}",
                String::from_utf8_lossy(&value)
            );
            let out = scrub_one(&value, &secret).expect(&ctx);
            assert!(contains(&out, PH.as_bytes()), "{ctx}");
            let want = secret.to_ascii_lowercase();
            for text in [out.clone(), unescape(&out, false), unescape(&out, true)] {
                let text = text.to_ascii_lowercase();
                assert!(!contains(&text, want.as_bytes()), "{ctx}");
            }
            for decoded in base64_decodings(&out)
                .into_iter()
                .chain(base64_decodings(&unescape(&out, false)))
            {
                assert!(!contains(&decoded, secret.as_bytes()), "{ctx}");
            }
        }
    }
}
