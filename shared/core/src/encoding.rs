//! Percent-encoding (RFC 3986), one implementation for the Hive partition
//! values, URL path segments and URL user info the pipeline writes.

use percent_encoding::{percent_decode_str, percent_encode_byte};

/// The RFC 3986 unreserved punctuation; with ASCII letters and digits, what
/// a URL path segment or user info carries unescaped.
pub const UNRESERVED: &[u8] = b"-._~";

/// Escapes every byte that is not an ASCII letter, digit or one of `also_safe`
/// as `%XX` (upper-case hex); the non-ASCII bytes of `also_safe` are escaped
/// too. The crate's own encoder takes only a `&'static AsciiSet`, and callers
/// pass their safe bytes at run time, so the loop is here and the escapes come
/// from the crate.
pub fn percent_encode(s: &str, also_safe: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || (b.is_ascii() && also_safe.contains(&b)) {
            out.push(char::from(b));
        } else {
            out.push_str(percent_encode_byte(b));
        }
    }
    out
}

/// Decodes `%XX` escapes; anything that is not one (a lone `%`, `%+F`, `%zz`)
/// stays as it is, and bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_outside_the_safe_set_and_decodes_back() {
        assert_eq!(percent_encode("^GSPC", b"._-"), "%5EGSPC");
        assert_eq!(percent_encode("EURUSD=X", UNRESERVED), "EURUSD%3DX");
        assert_eq!(percent_encode("p@ss/w:rd~", UNRESERVED), "p%40ss%2Fw%3Ard~");
        for s in ["^GSPC", "EURUSD=X", "p@ss/w:rd", "Ünï ✓"] {
            assert_eq!(percent_decode(&percent_encode(s, UNRESERVED)), s);
        }
    }

    #[test]
    fn encodes_as_the_crate_does_with_the_same_set() {
        use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
        const UNRESERVED_SET: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let all_ascii: String = (0u8..128).map(char::from).collect();
        for s in [all_ascii.as_str(), "^GSPC", "p@ss/w:rd~", "Ünï ✓ 100%"] {
            assert_eq!(
                percent_encode(s, UNRESERVED),
                utf8_percent_encode(s, UNRESERVED_SET).to_string(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn decoding_leaves_what_is_not_an_escape() {
        assert_eq!(percent_decode("%5EGSPC"), "^GSPC");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%+F"), "%+F");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
