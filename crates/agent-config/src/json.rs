//! A JSON reader that, unlike `serde_json::Value`, remembers the line of every key.
//!
//! Duplicate keys are kept as separate entries (the decoder decides what repetition means), and
//! integers stay integers so that `"mode": 416` is read as decimal 416.

use crate::hcl1::SyntaxError;
use crate::tree::{Entry, IntForm, MAX_DEPTH, Node, Value};

/// Parses a JSON document whose top level must be an object.
pub(crate) fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut reader = Reader {
        bytes: text.as_bytes(),
        text,
        pos: 0,
        line: 1,
    };
    reader.skip_space();
    if reader.peek() != Some(b'{') {
        return Err(reader.error("a JSON config must be an object { ... }"));
    }

    let node = reader.value(0)?;
    reader.skip_space();
    if reader.pos < reader.bytes.len() {
        return Err(reader.error("unexpected text after the closing '}'"));
    }
    match node.value {
        Value::Object(entries) => Ok(entries),
        _ => Err(reader.error("a JSON config must be an object { ... }")),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
    line: u32,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            line: self.line,
            message: message.into(),
        }
    }

    fn skip_space(&mut self) {
        while self
            .peek()
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            self.bump();
        }
        // A byte-order mark is tolerated at the very start only.
        if self.pos == 0 && self.text.starts_with('\u{feff}') {
            self.pos = 3;
            self.skip_space();
        }
    }

    fn expect(&mut self, wanted: u8) -> Result<(), SyntaxError> {
        self.skip_space();
        match self.bump() {
            Some(b) if b == wanted => Ok(()),
            _ => Err(self.error(format!("expected '{}'", char::from(wanted)))),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        self.skip_space();
        let line = self.line;
        if depth > MAX_DEPTH {
            return Err(self.error("nesting is too deep"));
        }

        let value = match self.peek() {
            Some(b'{') => Value::Object(self.object(depth)?),
            Some(b'[') => Value::List(self.array(depth)?),
            Some(b'"') => Value::Str(self.string()?),
            Some(b't') => self.word("true", Value::Bool(true))?,
            Some(b'f') => self.word("false", Value::Bool(false))?,
            Some(b'n') => self.word("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => return Err(self.error("expected a JSON value")),
        };
        Ok(Node { value, line })
    }

    fn object(&mut self, depth: usize) -> Result<Vec<Entry>, SyntaxError> {
        self.bump();
        let mut entries = Vec::new();
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.bump();
            return Ok(entries);
        }
        loop {
            self.skip_space();
            let line = self.line;
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a quoted key"));
            }
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.value(depth + 1)?;
            entries.push(Entry {
                key,
                line,
                labels: Vec::new(),
                value,
            });

            self.skip_space();
            match self.bump() {
                Some(b',') => {}
                Some(b'}') => return Ok(entries),
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Vec<Node>, SyntaxError> {
        self.bump();
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(b']') {
            self.bump();
            return Ok(items);
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.skip_space();
            match self.bump() {
                Some(b',') => {}
                Some(b']') => return Ok(items),
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    fn word(&mut self, word: &str, value: Value) -> Result<Value, SyntaxError> {
        let end = self.pos + word.len();
        if self.bytes.get(self.pos..end) == Some(word.as_bytes()) {
            self.pos = end;
            Ok(value)
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
        {
            self.bump();
        }
        let text = self.text.get(start..self.pos).unwrap_or_default();
        if !valid_json_number(text) {
            return Err(self.error(format!("invalid number {text:?}")));
        }
        if let Ok(int) = text.parse::<i64>() {
            return Ok(Value::Int(int, IntForm::Json));
        }
        match text.parse::<f64>() {
            Ok(float) if float.is_finite() => Ok(Value::Float(float)),
            _ => Err(self.error(format!("number {text} is out of range"))),
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.bump();
        let mut out = String::new();
        loop {
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|b| b != b'"' && b != b'\\' && b >= 0x20)
            {
                self.pos += 1;
            }
            out.push_str(self.text.get(start..self.pos).unwrap_or_default());

            match self.bump() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => self.escape(&mut out)?,
                Some(_) => return Err(self.error("control character inside a string")),
                None => return Err(self.error("string is not closed with '\"'")),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), SyntaxError> {
        let decoded = match self.bump() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let high = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&high) {
                    if self.bump() != Some(b'\\') || self.bump() != Some(b'u') {
                        return Err(self.error("unpaired surrogate in \\u escape"));
                    }
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(self.error("unpaired surrogate in \\u escape"));
                    }
                    0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    high
                };
                char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))?
            }
            _ => return Err(self.error("invalid escape sequence")),
        };
        out.push(decoded);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let digits = self.text.get(self.pos..self.pos + 4).unwrap_or_default();
        let code = u32::from_str_radix(digits, 16).map_err(|_| self.error("invalid \\u escape"))?;
        if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(self.error("invalid \\u escape"));
        }
        self.pos += 4;
        Ok(code)
    }
}

/// The JSON number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn valid_json_number(text: &str) -> bool {
    let rest = text.strip_prefix('-').unwrap_or(text);
    let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    if int_len == 0 || (int_len > 1 && rest.starts_with('0')) {
        return false;
    }
    let mut rest = &rest[int_len..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &fraction[digits..];
    }
    if let Some(exponent) = rest.strip_prefix(['e', 'E']) {
        let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        let digits = exponent.bytes().take_while(u8::is_ascii_digit).count();
        return digits > 0 && digits == exponent.len();
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<&str, &str>) {
        let got = parse(text)
            .map(|entries| format!("{entries:?}"))
            .map_err(|e| format!("{}: {}", e.line, e.message));
        match (got, expected) {
            (Ok(tree), Ok(fragment)) => assert!(tree.contains(fragment), "{text}: {tree}"),
            (Err(e), Err(wanted)) => assert_eq!(e, wanted, "{text}"),
            (got, _) => panic!("{text}: unexpected {got:?}"),
        }
    }

    #[test]
    fn values_and_lines() {
        check("{\"mode\": 416}", Ok("Int(416, Json)"));
        check("{\"f\": 1.5e2}", Ok("Float(150.0)"));
        check(
            "{\n\"a\": {\n\"b\": \"\\u00e9\\ud83d\\ude00\"}}",
            Ok("key: \"b\", line: 3"),
        );
        check(
            "{\"a\": [true, null]}",
            Ok("List([Node { value: Bool(true), line: 1 }"),
        );
        check("{\"a\": 1, \"a\": 2}", Ok("Int(2, Json)"));
    }

    #[test]
    fn rejects_what_json_rejects() {
        check("[1]", Err("1: a JSON config must be an object { ... }"));
        check("{\"a\": 01}", Err("1: invalid number \"01\""));
        check("{\"a\": 1,}", Err("1: expected a quoted key"));
        check(
            "{\"a\": 1}\n}",
            Err("2: unexpected text after the closing '}'"),
        );
        check(
            "{\"a\": \"\\ud800\"}",
            Err("1: unpaired surrogate in \\u escape"),
        );
        check("{\"a\": \"x", Err("1: string is not closed with '\"'"));
        check("{\"a\": 1e999}", Err("1: number 1e999 is out of range"));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = format!("{{\"a\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        check(&text, Err("1: nesting is too deep"));
    }
}
