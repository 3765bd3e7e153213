//! A small JSON scanner that knows where it is.
//!
//! serde-json-core turns text into typed values but reports no positions, so econet
//! first checks the syntax here (naming the JSON path, line and column of a mistake)
//! and uses the spans this scanner finds to hand serde-json-core one array element at
//! a time. Depth and size are bounded; no input makes it panic.

use std::fmt;
use std::ops::Range;

/// Deepest nesting accepted; the schema needs five levels.
pub const MAX_DEPTH: usize = 32;

/// One step of a JSON path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A JSON path like `networks[2].ip.subnet`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Seg>);

impl Path {
    pub fn root() -> Path {
        Path(Vec::new())
    }
    pub fn key(&self, k: &str) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
    pub fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A syntax error with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub path: Path,
    pub line: usize,
    pub col: usize,
    pub msg: &'static str,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: invalid JSON at line {}, column {}: {}",
            self.path, self.line, self.col, self.msg
        )
    }
}

/// What kind of value a span holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Object => "an object",
            Kind::Array => "an array",
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Bool => "true or false",
            Kind::Null => "null",
        }
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    path: Vec<Seg>,
    track: bool,
}

type Res<T> = Result<T, (usize, &'static str)>;

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.pos) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn value(&mut self, depth: usize) -> Res<(Kind, Range<usize>)> {
        self.ws();
        let start = self.pos;
        let kind = match self.peek() {
            None => return Err((self.pos, "unexpected end of input, expected a value")),
            Some(b'{') => {
                self.object(depth + 1)?;
                Kind::Object
            }
            Some(b'[') => {
                self.array(depth + 1)?;
                Kind::Array
            }
            Some(b'"') => {
                self.string()?;
                Kind::String
            }
            Some(b't') => {
                self.lit(b"true")?;
                Kind::Bool
            }
            Some(b'f') => {
                self.lit(b"false")?;
                Kind::Bool
            }
            Some(b'n') => {
                self.lit(b"null")?;
                Kind::Null
            }
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                Kind::Number
            }
            Some(_) => return Err((self.pos, "expected a value")),
        };
        Ok((kind, start..self.pos))
    }

    fn lit(&mut self, word: &[u8]) -> Res<()> {
        if self.b.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err((self.pos, "expected true, false or null"))
        }
    }

    fn number(&mut self) -> Res<()> {
        let digits = |s: &mut Self| {
            let st = s.pos;
            while matches!(s.peek(), Some(b'0'..=b'9')) {
                s.pos += 1;
            }
            s.pos > st
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        if self.peek() == Some(b'0') {
            self.pos += 1;
        } else if !digits(self) {
            return Err((self.pos, "malformed number"));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err((self.pos, "malformed number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err((self.pos, "malformed number"));
            }
        }
        Ok(())
    }

    /// Four hex digits of a `\\u` escape.
    fn hex4(&mut self) -> Res<u32> {
        let digits = self
            .b
            .get(self.pos..self.pos + 4)
            .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
            .ok_or((self.pos, "bad \\u escape"))?;
        let v = digits
            .iter()
            .fold(0u32, |v, d| v * 16 + (*d as char).to_digit(16).unwrap_or(0));
        self.pos += 4;
        Ok(v)
    }

    /// Scans a string starting at `"`; returns the raw content range (escapes kept).
    fn string(&mut self) -> Res<Range<usize>> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err((self.pos, "unterminated string")),
                Some(b'"') => {
                    let r = start..self.pos;
                    self.pos += 1;
                    // The whole string must be UTF-8.
                    if std::str::from_utf8(&self.b[r.clone()]).is_err() {
                        return Err((start, "string is not valid UTF-8"));
                    }
                    return Ok(r);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            let at = self.pos - 1;
                            self.pos += 1;
                            let unit = self.hex4()?;
                            // A surrogate half stands only as the first of a pair
                            // (RFC 8259 7): UTF-8 cannot carry one alone.
                            if (0xdc00..0xe000).contains(&unit) {
                                return Err((at, "\\u escape of a lone low surrogate"));
                            }
                            if (0xd800..0xdc00).contains(&unit) {
                                let low = match self.b.get(self.pos..self.pos + 2) {
                                    Some(b"\\u") => {
                                        self.pos += 2;
                                        self.hex4()?
                                    }
                                    _ => 0,
                                };
                                if !(0xdc00..0xe000).contains(&low) {
                                    return Err((at, "\\u escape of a lone high surrogate"));
                                }
                            }
                        }
                        _ => return Err((self.pos, "bad escape in string")),
                    }
                }
                Some(c) if c < 0x20 => return Err((self.pos, "control character in string")),
                Some(_) => self.pos += 1,
            }
        }
    }

    fn object(&mut self, depth: usize) -> Res<()> {
        if depth > MAX_DEPTH {
            return Err((self.pos, "nested too deeply"));
        }
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err((self.pos, "expected a quoted key"));
            }
            let k = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err((self.pos, "expected ':' after key"));
            }
            self.pos += 1;
            if self.track {
                let key = unescape(&self.b[k]).unwrap_or_default();
                self.path.push(Seg::Key(key));
            }
            self.value(depth)?;
            if self.track {
                self.path.pop();
            }
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        return Err((self.pos, "trailing comma before '}'"));
                    }
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return Err((self.pos, "unexpected end of input inside an object")),
                _ => return Err((self.pos, "expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Res<()> {
        if depth > MAX_DEPTH {
            return Err((self.pos, "nested too deeply"));
        }
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        let mut i = 0;
        loop {
            if self.track {
                self.path.push(Seg::Index(i));
            }
            self.value(depth)?;
            if self.track {
                self.path.pop();
            }
            i += 1;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        return Err((self.pos, "trailing comma before ']'"));
                    }
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return Err((self.pos, "unexpected end of input inside an array")),
                _ => return Err((self.pos, "expected ',' or ']'")),
            }
        }
    }
}

fn line_col(b: &[u8], pos: usize) -> (usize, usize) {
    let pos = pos.min(b.len());
    let before = &b[..pos];
    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
    let col = match before.iter().rposition(|&c| c == b'\n') {
        Some(nl) => pos - nl,
        None => pos + 1,
    };
    (line, col)
}

/// Checks that `doc` is one well-formed JSON value; on failure names where.
pub fn check_syntax(doc: &[u8]) -> Result<(), SyntaxError> {
    let mut s = Scanner {
        b: doc,
        pos: 0,
        path: Vec::new(),
        track: true,
    };
    let r = s.value(0).and_then(|_| {
        s.ws();
        if s.pos != doc.len() {
            Err((s.pos, "trailing characters after the document"))
        } else {
            Ok(())
        }
    });
    r.map_err(|(pos, msg)| {
        let (line, col) = line_col(doc, pos);
        SyntaxError {
            path: Path(std::mem::take(&mut s.path)),
            line,
            col,
            msg,
        }
    })
}

/// The kind of the value in `span` of an already checked document.
pub fn kind(doc: &[u8], span: &Range<usize>) -> Kind {
    match doc.get(span.start) {
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        Some(b'"') => Kind::String,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'n') => Kind::Null,
        _ => Kind::Number,
    }
}

fn scanner_at(doc: &[u8], at: usize) -> Scanner<'_> {
    Scanner {
        b: doc,
        pos: at,
        path: Vec::new(),
        track: false,
    }
}

/// Members (unescaped key, value span) of the object at `span` of a checked document.
/// Returns an empty list if `span` is not an object.
pub fn members(doc: &[u8], span: &Range<usize>) -> Vec<(String, Range<usize>)> {
    let mut out = Vec::new();
    if doc.get(span.start) != Some(&b'{') {
        return out;
    }
    let mut s = scanner_at(doc, span.start + 1);
    loop {
        s.ws();
        if s.peek() != Some(b'"') {
            return out;
        }
        let Ok(k) = s.string() else { return out };
        s.ws();
        s.pos += 1; // ':'
        let Ok((_, v)) = s.value(0) else { return out };
        out.push((unescape(&doc[k]).unwrap_or_default(), v));
        s.ws();
        if s.peek() == Some(b',') {
            s.pos += 1;
        } else {
            return out;
        }
    }
}

/// Element spans of the array at `span` of a checked document (empty if not an array).
pub fn elements(doc: &[u8], span: &Range<usize>) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    if doc.get(span.start) != Some(&b'[') {
        return out;
    }
    let mut s = scanner_at(doc, span.start + 1);
    s.ws();
    if s.peek() == Some(b']') {
        return out;
    }
    loop {
        let Ok((_, v)) = s.value(0) else { return out };
        out.push(v);
        s.ws();
        if s.peek() == Some(b',') {
            s.pos += 1;
        } else {
            return out;
        }
    }
}

/// Decodes the raw content of a JSON string (between the quotes).
pub fn unescape(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    if !s.contains('\\') {
        return Some(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let unit = |it: &mut std::str::Chars| -> Option<u32> {
                    let hex: String = it.take(4).collect();
                    u32::from_str_radix(&hex, 16).ok()
                };
                let mut cp = unit(&mut it)?;
                if (0xd800..0xdc00).contains(&cp) {
                    // The pair's second half follows as its own escape.
                    if (it.next(), it.next()) != (Some('\\'), Some('u')) {
                        return None;
                    }
                    let low = unit(&mut it)?;
                    if !(0xdc00..0xe000).contains(&low) {
                        return None;
                    }
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                }
                out.push(char::from_u32(cp)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// `doc` (syntax-checked) with every surrogate-pair escape (`\\ud83d\\ude00`) written
/// as the UTF-8 of its character: serde-json-core decodes `\\u` one unit at a time
/// and refuses a surrogate half, so an escaped emoji would not decode as the same
/// emoji written raw does. Nothing else changes, and the result is never longer.
pub fn join_surrogate_escapes(doc: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let is_high = |b: &[u8]| {
        b.len() >= 6
            && b[0] == b'\\'
            && b[1] == b'u'
            && matches!(b[2], b'd' | b'D')
            && matches!(b[3], b'8' | b'9' | b'a' | b'b' | b'A' | b'B')
    };
    if !doc.windows(6).any(is_high) {
        return std::borrow::Cow::Borrowed(doc);
    }
    let mut out = Vec::with_capacity(doc.len());
    let (mut i, mut in_string) = (0, false);
    while i < doc.len() {
        let c = doc[i];
        if !in_string {
            in_string = c == b'"';
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            b'"' => in_string = false,
            b'\\' if is_high(&doc[i..]) => {
                // Checked: a high half here is followed by its low half.
                if let Some(ch) = doc.get(i..i + 12).and_then(unescape) {
                    out.extend_from_slice(ch.as_bytes());
                    i += 12;
                    continue;
                }
            }
            b'\\' => {
                // Any other escape passes as it is, both of its first bytes.
                out.push(c);
                i += 1;
                if let Some(&n) = doc.get(i) {
                    out.push(n);
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// Escapes `s` as a JSON string literal, quotes included.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    quote_into(&mut out, s);
    out
}

/// Appends `s` as a JSON string literal to `out`.
pub fn quote_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_element() {
        let doc =
            br#"{"networks": [{"id": "a"}, {"id": "b", "ip": {"subnet": 10.1}}, {"x": tru}]}"#;
        let e = check_syntax(doc).unwrap_err();
        assert_eq!(e.path.to_string(), "networks[2].x");
        assert_eq!(e.line, 1);
        assert!(e.msg.contains("true"));
    }

    #[test]
    fn line_and_column() {
        let doc = b"{\n  \"a\": [1,\n 2,]\n}";
        let e = check_syntax(doc).unwrap_err();
        assert_eq!((e.line, e.col), (3, 4));
        assert_eq!(e.path.to_string(), "a");
    }

    #[test]
    fn rejects_garbage_without_panic() {
        for doc in [
            &b""[..],
            b"{",
            b"[",
            b"\"",
            b"{\"a\"",
            b"{\"a\":",
            b"{\"a\":1,}",
            b"[1 2]",
            b"-",
            b"1.",
            b"1e",
            b"\"\\u12\"",
            b"\"\\x\"",
            b"{} {}",
            b"\xff",
            b"\"\xff\"",
            b"{1:2}",
        ] {
            assert!(check_syntax(doc).is_err(), "{:?}", doc);
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(
            check_syntax(deep.as_bytes()).unwrap_err().msg,
            "nested too deeply"
        );
    }

    #[test]
    fn surrogate_pairs_join_and_lone_halves_are_refused() {
        assert_eq!(unescape(br"a\ud83d\ude00b").unwrap(), "a\u{1f600}b");
        assert_eq!(unescape(br"\ud83d"), None);
        let doc = br#"{"a\ud83d\ude00": "x\\ud83d\"\ud83c\udfed\u00e9"}"#;
        check_syntax(doc).unwrap();
        let joined = join_surrogate_escapes(doc);
        assert_eq!(
            std::str::from_utf8(&joined).unwrap(),
            "{\"a\u{1f600}\": \"x\\\\ud83d\\\"\u{1f3ed}\\u00e9\"}"
        );
        check_syntax(&joined).unwrap();
        for bad in [
            &br#""\ud83d""#[..],
            br#""\udc00x""#,
            br#""\ud83dx""#,
            br#""\ud83d\u0041""#,
        ] {
            assert!(
                check_syntax(bad).unwrap_err().msg.contains("lone"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn spans() {
        let doc = br#" {"a": [1, {"b": "x\"y"}, []], "c\u0041": null} "#;
        check_syntax(doc).unwrap();
        let root = 1..doc.len() - 1;
        let m = members(doc, &root);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0, "a");
        assert_eq!(m[1].0, "cA");
        assert_eq!(kind(doc, &m[1].1), Kind::Null);
        let els = elements(doc, &m[0].1);
        assert_eq!(els.len(), 3);
        assert_eq!(&doc[els[0].clone()], b"1");
        let inner = members(doc, &els[1]);
        assert_eq!(&doc[inner[0].1.clone()], br#""x\"y""#);
        assert!(elements(doc, &els[2]).is_empty());
    }

    #[test]
    fn escape_round_trip() {
        let s = "a\"b\\c\nd\u{1}";
        let q = quote(s);
        assert_eq!(unescape(&q.as_bytes()[1..q.len() - 1]).unwrap(), s);
    }
}
