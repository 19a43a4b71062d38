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

/// Replaces, in every response header, each spelling of `secret` with `phantom`: every byte
/// of it as is or percent-encoded (either hex case, any mix; `+` for a space), so an upstream
/// that echoes the request URL (a redirect's `Location`, a `Link` for the next page) in
/// whatever encoding cannot hand the client the real credential.
///
/// Secrets shorter than [`SCRUB_MIN_LEN`] are left alone: text that short turns up in
/// ordinary headers, and no real API key is that short.
pub fn scrub_response_headers(headers: &mut HeaderMap, secret: &str, phantom: &str) {
    if secret.len() < SCRUB_MIN_LEN {
        return;
    }
    // The exact spellings the inject modes send, for secrets the per-byte reading cannot
    // match in one pass (one holding `%`, say, sent as `%25`).
    let exact: Vec<Zeroizing<String>> = vec![
        Zeroizing::new(secret.to_string()),
        Zeroizing::new(utf8_percent_encode(secret, QUERY_VALUE).to_string()),
        Zeroizing::new(crate::endpoint::encode_segment(secret)),
    ];
    let secret = Spellings {
        bytes: secret.as_bytes(),
        exact: &exact,
    };
    let names: Vec<HeaderName> = headers.keys().cloned().collect();
    for name in names {
        let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        if !values
            .iter()
            .any(|v| find_spelled(v.as_bytes(), &secret, 0).is_some())
        {
            continue;
        }
        headers.remove(&name);
        for v in values {
            let mut clean = Zeroizing::new(Vec::with_capacity(v.len()));
            let bytes = v.as_bytes();
            let mut from = 0;
            while let Some((start, end)) = find_spelled(bytes, &secret, from) {
                clean.extend_from_slice(&bytes[from..start]);
                clean.extend_from_slice(phantom.as_bytes());
                from = end;
            }
            clean.extend_from_slice(&bytes[from..]);
            match HeaderValue::from_bytes(&clean) {
                Ok(v) => headers.append(name.clone(), v),
                // Not representable any more: drop it rather than pass the secret on.
                Err(_) => continue,
            };
        }
    }
}

/// A secret to find: its bytes, and the exact spellings the inject modes send.
struct Spellings<'a> {
    bytes: &'a [u8],
    exact: &'a [Zeroizing<String>],
}

/// The first `(start, end)` at or after `from` where `value` spells the secret: each byte as
/// itself or as `%XX` (hex in either case, preferred where it decodes to the byte), a space
/// also as `+`; or one of the exact spellings.
fn find_spelled(value: &[u8], secret: &Spellings<'_>, from: usize) -> Option<(usize, usize)> {
    (from..value.len()).find_map(|start| {
        per_byte(value, secret.bytes, start).or_else(|| {
            secret.exact.iter().find_map(|e| {
                let e = e.as_bytes();
                value
                    .get(start..)
                    .is_some_and(|rest| rest.starts_with(e))
                    .then_some((start, start + e.len()))
            })
        })
    })
}

/// The end of `secret` read byte by byte from `value[start..]`, if it is there.
fn per_byte(value: &[u8], secret: &[u8], start: usize) -> Option<(usize, usize)> {
    let mut at = start;
    for &want in secret {
        at = match value.get(at..) {
            Some([b'%', hi, lo, ..]) if hex_pair(*hi, *lo) == Some(want) => at + 3,
            Some([b, ..]) if *b == want => at + 1,
            Some([b'+', ..]) if want == b' ' => at + 1,
            _ => return None,
        };
    }
    Some((start, at))
}

fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    u8::try_from(digit(hi)? * 16 + digit(lo)?).ok()
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
}
