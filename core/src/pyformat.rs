//! Python's `%`-formatting with named fields (`%(name)s`, `%(x)03d`, `%%`), tokenized: the one
//! parser behind Paste's log formats and MapProxy's tile URL templates. Callers decide which
//! names and conversions they accept.

/// A piece of a format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Literal text (`%%` already turned into `%`).
    Lit(String),
    /// `%(name)<flags><width><conv>`.
    Field(Field<'a>),
}

/// One `%(name)...` field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a str,
    /// The `0` flag (pad numbers with zeros).
    pub zero: bool,
    /// The `-` flag (pad on the right).
    pub left: bool,
    /// Any flag at all (`0`, `-`, ` `, `+`, `#`).
    pub flags: bool,
    /// Minimum width (0: none).
    pub width: usize,
    /// The conversion character (`s`, `d`, `x`, ...).
    pub conv: char,
}

/// Why a format does not parse; `rest` is the text from the offending `%` on (without it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError<'a> {
    /// A `%` neither doubled nor followed by `(`.
    NoName { rest: &'a str },
    /// `%(` without `)`.
    Unclosed { rest: &'a str },
    /// A width too large for a number.
    Width { name: &'a str },
    /// Nothing after `%(name)`.
    NoConversion { name: &'a str },
}

/// Split `s` into literal text and fields.
pub fn parse(s: &str) -> Result<Vec<Piece<'_>>, FormatError<'_>> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        lit.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('%') {
            lit.push('%');
            rest = r;
            continue;
        }
        let Some(r) = rest.strip_prefix('(') else {
            return Err(FormatError::NoName { rest });
        };
        let Some(end) = r.find(')') else {
            return Err(FormatError::Unclosed { rest: r });
        };
        let name = &r[..end];
        let mut r = &r[end + 1..];
        let (mut zero, mut left, mut flags) = (false, false, false);
        while let Some(c) = r
            .chars()
            .next()
            .filter(|c| matches!(c, '0' | '-' | ' ' | '+' | '#'))
        {
            zero |= c == '0';
            left |= c == '-';
            flags = true;
            r = &r[1..];
        }
        let digits = r.len() - r.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let width = if digits > 0 {
            r[..digits]
                .parse()
                .map_err(|_| FormatError::Width { name })?
        } else {
            0
        };
        r = &r[digits..];
        let Some(conv) = r.chars().next() else {
            return Err(FormatError::NoConversion { name });
        };
        rest = &r[conv.len_utf8()..];
        if !lit.is_empty() {
            pieces.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        pieces.push(Piece::Field(Field {
            name,
            zero,
            left,
            flags,
            width,
            conv,
        }));
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_literals_and_errors() {
        let p = parse("a%%b %(x)03d/%(name)s").unwrap();
        assert_eq!(p[0], Piece::Lit("a%b ".into()));
        let Piece::Field(f) = &p[1] else { panic!() };
        assert_eq!((f.name, f.zero, f.width, f.conv), ("x", true, 3, 'd'));
        assert_eq!(p[2], Piece::Lit("/".into()));
        assert!(matches!(
            parse("%x"),
            Err(FormatError::NoName { rest: "x" })
        ));
        assert!(matches!(parse("%(x"), Err(FormatError::Unclosed { .. })));
        assert!(matches!(
            parse("%(x)"),
            Err(FormatError::NoConversion { name: "x" })
        ));
    }
}
