//! Percent-encoding (RFC 3986), one implementation for the Hive partition
//! values, URL path segments and URL user info the pipeline writes.

/// The RFC 3986 unreserved punctuation; with ASCII letters and digits, what
/// a URL path segment or user info carries unescaped.
pub const UNRESERVED: &[u8] = b"-._~";

/// Escapes every byte that is not an ASCII letter, digit or one of `also_safe` as `%XX`.
pub fn percent_encode(s: &str, also_safe: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || also_safe.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; anything that is not one (a lone `%`, `%+F`) stays as it is.
pub fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
    fn decoding_leaves_what_is_not_an_escape() {
        assert_eq!(percent_decode("%5EGSPC"), "^GSPC");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%+F"), "%+F");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
