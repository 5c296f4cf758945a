//! Escaping for HTML and XML text, and percent-decoding of URL path segments: one
//! implementation for every page and document of the crate.

use std::borrow::Cow;

/// MapProxy's `escape_html`, for HTML and inline JavaScript alike: `&`, `<`, `>` as entities,
/// quotes (`"`, `'`) removed.
pub fn escape_html(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' | '\'' => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Python's `html.escape(s)` (quotes too: `&quot;`, `&#x27;`): how MapProxy escapes text in
/// XML documents and HTML attributes.
pub fn html_escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Percent-decode a path segment; `None` when the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html() {
        assert_eq!(escape_html("a<b>&\"'"), "a&lt;b&gt;&amp;");
        assert!(matches!(escape_html("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("a%2").as_deref(), Some("a%2"));
        assert_eq!(percent_decode("%zz%41").as_deref(), Some("%zzA"));
        assert_eq!(percent_decode("%ff"), None);
    }
}
