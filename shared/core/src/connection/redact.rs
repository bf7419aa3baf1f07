//! Keeping the password out of text: [`redact_url`] masks it in any
//! warehouse URL (even one that does not parse), and `scrub_secret` removes
//! it, raw or escaped, from free text such as a database driver's error.
//! Apart from parsing because it must also work on URLs that are invalid.

use percent_encoding::percent_decode_str;
use url::Url;

/// Passwords shorter than this are not scrubbed from free text: they would
/// blank out ordinary words.
/// [`WarehouseConnection::redacted`](super::WarehouseConnection::redacted)
/// never shows any password, whatever its length.
const MIN_SCRUBBED_LEN: usize = 4;

/// Any warehouse URL with its password replaced by `***` (in the user info
/// and in `?password=`), as written otherwise. A URL that does not parse
/// cleanly (e.g. a password with a raw `/`, `?` or `#` that ends the
/// authority early) shows `***` for everything before its last `@`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    if scheme.eq_ignore_ascii_case("sqlite") {
        return url.to_string();
    }
    if let Ok(mut parsed) = Url::parse(url)
        && parsed.fragment().is_none()
        && !parsed.path().contains('@')
        && !parsed.query().is_some_and(|q| q.contains('@'))
    {
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some("***"));
        }
        if let Some(query) = parsed.query().map(mask_query_password) {
            parsed.set_query(Some(&query));
        }
        return parsed.to_string();
    }
    // Not a URL the parser takes: a password may hold any character, so the
    // user info is everything up to the last `@` before a `password=`
    // parameter, and nothing after that parameter is shown.
    let (head, query_password) = match find_ignore_case(rest, "password=") {
        Some(at) => (&rest[..at], true),
        None => (rest, false),
    };
    let head = match head.rsplit_once('@') {
        Some((_, after)) => format!("***@{}", mask_tail(after)),
        None => mask_tail(head),
    };
    if query_password {
        format!("{scheme}://{head}password=***")
    } else {
        format!("{scheme}://{head}")
    }
}

/// Where `needle` (ASCII) starts in `text`, ignoring ASCII case.
fn find_ignore_case(text: &str, needle: &str) -> Option<usize> {
    text.as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn mask_tail(tail: &str) -> String {
    match tail.split_once('?') {
        Some((before, query)) => format!("{before}?{}", mask_query_password(query)),
        None => tail.to_string(),
    }
}

/// The query with the `password` parameter's value masked, and everything
/// after it too: a password written with a raw `&` runs on past it.
fn mask_query_password(query: &str) -> String {
    let mut out = Vec::new();
    for kv in query.split('&') {
        match kv.split_once('=') {
            Some((k, _))
                if percent_decode_str(k)
                    .decode_utf8_lossy()
                    .eq_ignore_ascii_case("password") =>
            {
                out.push(format!("{k}=***"));
                break;
            }
            _ => out.push(kv.to_string()),
        }
    }
    out.join("&")
}

/// `text` with every occurrence of `secret` replaced by `***`, each byte of
/// it matched as is, as `%XX` (either case), a space as `+`, a quote or
/// backslash escaped by a backslash (as `Debug` writes them).
pub(super) fn scrub_secret(text: &str, secret: &[u8]) -> String {
    if secret.len() < MIN_SCRUBBED_LEN {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match match_secret(bytes, i, secret) {
            Some(end) => {
                out.extend_from_slice(b"***");
                i = end;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    // A match starts at an ASCII byte or the first byte of a character and
    // ends after the last byte of one, so the text stays UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Where a match of `secret` starting at `at` ends, if there is one.
fn match_secret(text: &[u8], at: usize, secret: &[u8]) -> Option<usize> {
    let Some((&first, rest)) = secret.split_first() else {
        return Some(at);
    };
    let hex = |b: u8| (b as char).to_digit(16);
    let escaped = text.get(at) == Some(&b'%')
        && matches!(
            (text.get(at + 1).copied().and_then(hex), text.get(at + 2).copied().and_then(hex)),
            (Some(hi), Some(lo)) if hi * 16 + lo == u32::from(first)
        );
    if escaped && let Some(end) = match_secret(text, at + 3, rest) {
        return Some(end);
    }
    // As `Debug` of a string escapes them.
    let debug_escaped = matches!(first, b'"' | b'\\' | b'\'')
        && text.get(at) == Some(&b'\\')
        && text.get(at + 1) == Some(&first);
    if debug_escaped && let Some(end) = match_secret(text, at + 2, rest) {
        return Some(end);
    }
    let raw = text.get(at) == Some(&first) || (first == b' ' && text.get(at) == Some(&b'+'));
    if raw {
        match_secret(text, at + 1, rest)
    } else {
        None
    }
}
