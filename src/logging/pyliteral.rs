//! The small part of Python's expression syntax that handler `args` and `kwargs` use in
//! logging ini files: tuples, lists, dicts with string keys, strings (with escapes, `r''`,
//! adjacent literals joined), integers (with `_`, hex, and `*`/`+`/`-` arithmetic such as
//! `10*1024*1024`), floats, `True`/`False`/`None`, and `sys.stdout`/`sys.stderr`.
//!
//! Brackets may nest at most [`MAX_NESTING`] deep (Python's own parser gives up at 200);
//! deeper is an error, never a stack overflow. Signs (`- - -1`) are read in a loop.
//!
//! ```
//! use mapproxy_serve::logging::pyliteral::{parse, Value};
//!
//! let v = parse("('/var/log/app.log', 'a', 10*1024*1024, 5)").unwrap();
//! assert_eq!(v, Value::Tuple(vec![
//!     Value::Str("/var/log/app.log".into()),
//!     Value::Str("a".into()),
//!     Value::Int(10 * 1024 * 1024),
//!     Value::Int(5),
//! ]));
//! ```

use std::fmt;

/// A Python value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `'text'`
    Str(String),
    /// `42`
    Int(i64),
    /// `1.5`
    Float(f64),
    /// `True` / `False`
    Bool(bool),
    /// `None`
    None,
    /// `sys.stdout`
    Stdout,
    /// `sys.stderr`
    Stderr,
    /// `(a, b)`
    Tuple(Vec<Value>),
    /// `[a, b]`
    List(Vec<Value>),
    /// `{'k': v}`
    Dict(Vec<(String, Value)>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::None => f.write_str("None"),
            Value::Stdout => f.write_str("sys.stdout"),
            Value::Stderr => f.write_str("sys.stderr"),
            Value::Tuple(v) | Value::List(v) => {
                let (o, c) = if matches!(self, Value::Tuple(_)) {
                    ("(", ")")
                } else {
                    ("[", "]")
                };
                f.write_str(o)?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{x}")?;
                }
                if v.len() == 1 && o == "(" {
                    f.write_str(",")?;
                }
                f.write_str(c)
            }
            Value::Dict(v) => {
                f.write_str("{")?;
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?}: {x}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// How deep `(`, `[` and `{` may nest.
pub const MAX_NESTING: usize = 100;

/// Parse one expression. A bare `a, b` is a tuple, as in Python.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
        depth: 0,
    };
    p.ws();
    if p.pos == p.s.len() {
        return Err("empty expression".into());
    }
    let first = p.expr()?;
    p.ws();
    let v = if p.peek() == Some(b',') {
        let mut items = vec![first];
        while p.eat(b',') {
            p.ws();
            if p.pos == p.s.len() {
                break;
            }
            items.push(p.expr()?);
            p.ws();
        }
        Value::Tuple(items)
    } else {
        first
    };
    p.ws();
    if p.pos != p.s.len() {
        return Err(format!(
            "unexpected {:?} at column {} (only literals, tuples, dicts and sys.stdout/sys.stderr are understood)",
            &text[p.pos..],
            p.pos + 1
        ));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    /// Brackets open around `pos`.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at column {}", self.pos + 1))
    }

    /// Sums and products of numbers; anything else is a single atom.
    fn expr(&mut self) -> Result<Value, String> {
        let mut acc = self.term()?;
        loop {
            self.ws();
            let op = match self.peek() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return Ok(acc),
            };
            self.pos += 1;
            self.ws();
            let rhs = self.term()?;
            acc = arith(acc, rhs, if op > 0 { '+' } else { '-' }).or_else(|e| self.err(&e))?;
        }
    }

    fn term(&mut self) -> Result<Value, String> {
        let mut acc = self.unary()?;
        loop {
            self.ws();
            if self.peek() == Some(b'*') && self.s.get(self.pos + 1) != Some(&b'*') {
                self.pos += 1;
                self.ws();
                let rhs = self.unary()?;
                acc = arith(acc, rhs, '*').or_else(|e| self.err(&e))?;
            } else {
                return Ok(acc);
            }
        }
    }

    fn unary(&mut self) -> Result<Value, String> {
        // Any number of signs, read in a loop (not one call each).
        let mut signs = 0usize;
        let mut negative = false;
        loop {
            self.ws();
            if self.eat(b'-') {
                negative = !negative;
            } else if !self.eat(b'+') {
                break;
            }
            signs += 1;
        }
        let v = self.atom()?;
        if signs == 0 {
            return Ok(v);
        }
        match v {
            Value::Int(i) if negative => i
                .checked_neg()
                .map(Value::Int)
                .ok_or_else(|| "integer overflow".to_string())
                .or_else(|e| self.err(&e)),
            Value::Float(f) if negative => Ok(Value::Float(-f)),
            v @ (Value::Int(_) | Value::Float(_)) => Ok(v),
            _ => self.err("a sign before something that is not a number"),
        }
    }

    /// Enter a bracket (`(`, `[`, `{` at `pos`), unless that nests too deep.
    fn open(&mut self) -> Result<(), String> {
        if self.depth >= MAX_NESTING {
            return self.err(&format!("brackets nested more than {MAX_NESTING} deep"));
        }
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }

    fn atom(&mut self) -> Result<Value, String> {
        self.ws();
        match self.peek() {
            None => self.err("unexpected end of expression"),
            Some(b'(') => {
                self.open()?;
                let (items, trailing_comma) = self.items(b')')?;
                self.depth -= 1;
                if items.len() == 1 && !trailing_comma {
                    Ok(items.into_iter().next().unwrap_or(Value::None))
                } else {
                    Ok(Value::Tuple(items))
                }
            }
            Some(b'[') => {
                self.open()?;
                let items = self.items(b']')?.0;
                self.depth -= 1;
                Ok(Value::List(items))
            }
            Some(b'{') => {
                self.open()?;
                let d = self.dict()?;
                self.depth -= 1;
                Ok(d)
            }
            Some(b'\'' | b'"') => self.strings(),
            Some(c) if c.is_ascii_digit() || c == b'.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
                {
                    self.pos += 1;
                }
                let word = &self.text[start..self.pos];
                // String prefixes: r'..', b'..', u'..'
                if matches!(self.peek(), Some(b'\'' | b'"'))
                    && matches!(
                        word.to_ascii_lowercase().as_str(),
                        "r" | "u" | "b" | "rb" | "br"
                    )
                {
                    self.pos = start;
                    return self.strings();
                }
                match word {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "None" => Ok(Value::None),
                    "sys.stdout" => Ok(Value::Stdout),
                    "sys.stderr" => Ok(Value::Stderr),
                    _ => {
                        self.pos = start;
                        self.err(&format!(
                            "'{word}' is a Python name this program cannot evaluate \
                             (understood: literals, sys.stdout, sys.stderr)"
                        ))
                    }
                }
            }
            Some(_) => {
                let rest: String = self.text[self.pos..].chars().take(10).collect();
                self.err(&format!("unexpected {rest:?}"))
            }
        }
    }

    /// Comma-separated items up to `close`; reports whether a trailing comma was present.
    fn items(&mut self, close: u8) -> Result<(Vec<Value>, bool), String> {
        let mut items = Vec::new();
        let mut trailing = false;
        loop {
            self.ws();
            if self.eat(close) {
                return Ok((items, trailing));
            }
            items.push(self.expr()?);
            self.ws();
            trailing = self.eat(b',');
            if !trailing {
                self.ws();
                if self.eat(close) {
                    return Ok((items, false));
                }
                return self.err(&format!("expected ',' or '{}'", close as char));
            }
        }
    }

    fn dict(&mut self) -> Result<Value, String> {
        let mut entries = Vec::new();
        loop {
            self.ws();
            if self.eat(b'}') {
                return Ok(Value::Dict(entries));
            }
            let key = match self.expr()? {
                Value::Str(s) => s,
                other => return self.err(&format!("dict key {other} is not a string")),
            };
            self.ws();
            if !self.eat(b':') {
                return self.err("expected ':' after a dict key");
            }
            let value = self.expr()?;
            entries.push((key, value));
            self.ws();
            if !self.eat(b',') {
                self.ws();
                if self.eat(b'}') {
                    return Ok(Value::Dict(entries));
                }
                return self.err("expected ',' or '}'");
            }
        }
    }

    /// One or more adjacent string literals, joined.
    fn strings(&mut self) -> Result<Value, String> {
        let mut out = String::new();
        loop {
            self.ws();
            let start = self.pos;
            let mut raw = false;
            while let Some(c) = self.peek() {
                match c {
                    b'r' | b'R' => raw = true,
                    b'u' | b'U' | b'b' | b'B' => {}
                    _ => break,
                }
                self.pos += 1;
            }
            let quote = match self.peek() {
                Some(q @ (b'\'' | b'"')) => q,
                _ => {
                    self.pos = start;
                    return Ok(Value::Str(out));
                }
            };
            let triple = self.s.get(self.pos..self.pos + 3) == Some(&[quote, quote, quote][..]);
            self.pos += if triple { 3 } else { 1 };
            loop {
                let Some(c) = self.peek() else {
                    return self.err("unterminated string");
                };
                if c == quote {
                    if !triple {
                        self.pos += 1;
                        break;
                    }
                    if self.s.get(self.pos..self.pos + 3) == Some(&[quote, quote, quote][..]) {
                        self.pos += 3;
                        break;
                    }
                }
                if c == b'\n' && !triple {
                    return self.err("unterminated string");
                }
                if c == b'\\' {
                    let next = self.s.get(self.pos + 1).copied();
                    if raw {
                        out.push('\\');
                        if let Some(n) = next {
                            if n == quote || n == b'\\' {
                                out.push(n as char);
                                self.pos += 2;
                                continue;
                            }
                        }
                        self.pos += 1;
                        continue;
                    }
                    self.pos += 2;
                    match next {
                        Some(b'n') => out.push('\n'),
                        Some(b't') => out.push('\t'),
                        Some(b'r') => out.push('\r'),
                        Some(b'0') => out.push('\0'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'\'') => out.push('\''),
                        Some(b'"') => out.push('"'),
                        Some(b'\n') => {}
                        Some(b'x') => {
                            let hex = self.text.get(self.pos..self.pos + 2).unwrap_or("");
                            match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                                Some(ch) if hex.len() == 2 => {
                                    out.push(ch);
                                    self.pos += 2;
                                }
                                _ => return self.err("bad \\x escape"),
                            }
                        }
                        Some(_) => {
                            // Python keeps unknown escapes as they are: '\d' is backslash-d.
                            self.pos -= 1;
                            out.push('\\');
                        }
                        None => return self.err("unterminated string"),
                    }
                    continue;
                }
                // Copy one UTF-8 character.
                let ch = self.text[self.pos..].chars().next().unwrap_or('\u{fffd}');
                out.push(ch);
                self.pos += ch.len_utf8();
            }
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        if self
            .s
            .get(self.pos..self.pos + 2)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"0x"))
        {
            self.pos += 2;
            let hs = self.pos;
            while matches!(self.peek(), Some(c) if c.is_ascii_hexdigit() || c == b'_') {
                self.pos += 1;
            }
            let digits: String = self.text[hs..self.pos].replace('_', "");
            return i64::from_str_radix(&digits, 16)
                .map(Value::Int)
                .or_else(|_| self.err("bad hex number"));
        }
        let mut float = false;
        while let Some(c) = self.peek() {
            match c {
                b'0'..=b'9' | b'_' => {}
                b'.' => float = true,
                b'e' | b'E' => {
                    float = true;
                    if matches!(self.s.get(self.pos + 1), Some(b'+' | b'-')) {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
            self.pos += 1;
        }
        let text = self.text[start..self.pos].replace('_', "");
        if float {
            text.parse::<f64>()
                .map(Value::Float)
                .or_else(|_| self.err(&format!("bad number {text:?}")))
        } else {
            text.parse::<i64>()
                .map(Value::Int)
                .or_else(|_| self.err(&format!("bad number {text:?}")))
        }
    }
}

fn arith(a: Value, b: Value, op: char) -> Result<Value, String> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => {
            let r = match op {
                '*' => x.checked_mul(y),
                '+' => x.checked_add(y),
                _ => x.checked_sub(y),
            };
            r.map(Value::Int)
                .ok_or_else(|| "integer overflow".to_string())
        }
        (Value::Str(x), Value::Str(y)) if op == '+' => Ok(Value::Str(x + &y)),
        (x @ (Value::Int(_) | Value::Float(_)), y @ (Value::Int(_) | Value::Float(_))) => {
            let f = |v: Value| match v {
                Value::Int(i) => i as f64,
                Value::Float(f) => f,
                _ => 0.0,
            };
            let (x, y) = (f(x), f(y));
            Ok(Value::Float(match op {
                '*' => x * y,
                '+' => x + y,
                _ => x - y,
            }))
        }
        (x, y) => Err(format!("cannot compute {x} {op} {y}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(
            parse("(sys.stderr,)").unwrap(),
            Value::Tuple(vec![Value::Stderr])
        );
        assert_eq!(parse("()").unwrap(), Value::Tuple(vec![]));
        assert_eq!(parse("(sys.stdout)").unwrap(), Value::Stdout);
        assert_eq!(
            parse("'a.log', \"w\"").unwrap(),
            Value::Tuple(vec![Value::Str("a.log".into()), Value::Str("w".into())])
        );
        assert_eq!(
            parse(r"(r'C:\logs\x.log', 'it\'s' ' joined')").unwrap(),
            Value::Tuple(vec![
                Value::Str(r"C:\logs\x.log".into()),
                Value::Str("it's joined".into())
            ])
        );
        assert_eq!(
            parse("{'maxBytes': 1_024*2, 'backupCount': -3, 'delay': True}").unwrap(),
            Value::Dict(vec![
                ("maxBytes".into(), Value::Int(2048)),
                ("backupCount".into(), Value::Int(-3)),
                ("delay".into(), Value::Bool(true)),
            ])
        );
        assert_eq!(parse("- - -1").unwrap(), Value::Int(-1));
        assert_eq!(parse("+-+2.5").unwrap(), Value::Float(-2.5));
        assert!(parse("-'a'").is_err());
        assert!(parse("-(-9223372036854775807 - 1)").is_err(), "overflow");
        assert!(parse("(os.path.join('a'),)").is_err());
        assert!(parse("('a'").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn nesting_is_bounded_and_signs_are_a_loop() {
        let nested = |n: usize, open: &str, close: &str| {
            format!("{}sys.stderr,{}", open.repeat(n), close.repeat(n))
        };
        assert!(parse(&nested(MAX_NESTING, "(", ")")).is_ok());
        assert!(parse(&nested(MAX_NESTING, "[", "]")).is_ok());
        for (open, close) in [("(", ")"), ("[", "]")] {
            let e = parse(&nested(10_000, open, close)).expect_err("too deep");
            assert_eq!(e, "brackets nested more than 100 deep at column 101");
        }
        let e = parse(&format!(
            "{}'k': 1{}",
            "{'k': ".repeat(200),
            "}".repeat(201)
        ))
        .expect_err("too deep");
        assert!(e.starts_with("brackets nested more than 100 deep"), "{e}");
        // A hundred thousand signs do not recurse.
        assert_eq!(
            parse(&format!("{}1", "-".repeat(100_000))).unwrap(),
            Value::Int(1)
        );
        assert_eq!(
            parse(&format!("{}1", "+".repeat(100_001))).unwrap(),
            Value::Int(1)
        );
    }
}
