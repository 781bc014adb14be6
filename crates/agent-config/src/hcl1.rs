//! A small parser for HCL v1, the dialect Vault Agent configs are written in.
//!
//! HCL v1 is not HCL 2: items may share a line (`sink { type = "file" config = {...} }`), keys
//! may be quoted (`"k" = 1`), an object value may hold blocks (`auto_auth = { method "k" {} }`),
//! and integer literals follow Go's base-0 rule (`0640` is octal, `0x1f` hex). The grammar is
//! small, so this module implements it directly instead of patching an HCL 2 parser's output.
//!
//! Grammar: a body is a list of items, each optionally followed by a comma. An item is one or
//! more keys (identifiers or strings) followed by `= value` (one key only) or `{ body }`. A value
//! is a string, heredoc, number, `true`/`false`, `[ value, ... ]` or `{ body }`. `${...}` inside
//! strings is kept literally.

use crate::tree::{Entry, IntForm, MAX_DEPTH, Node, Value};

/// The text is not valid HCL v1.
#[derive(Debug, PartialEq)]
pub(crate) struct SyntaxError {
    pub(crate) line: u32,
    pub(crate) message: String,
}

/// Parses a whole file into its top-level entries.
pub(crate) fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut parser = Parser {
        lexer: Lexer {
            src: text,
            pos: 0,
            line: 1,
        },
        peeked: None,
    };
    parser.body(0, false)
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Str(String),
    Int(i64, IntForm),
    Float(f64),
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    Assign,
    Comma,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(name) => format!("identifier {name:?}"),
            Tok::Str(_) => "a string".to_owned(),
            Tok::Int(..) | Tok::Float(_) => "a number".to_owned(),
            Tok::LBrace => "'{'".to_owned(),
            Tok::RBrace => "'}'".to_owned(),
            Tok::LBrack => "'['".to_owned(),
            Tok::RBrack => "']'".to_owned(),
            Tok::Assign => "'='".to_owned(),
            Tok::Comma => "','".to_owned(),
            Tok::Eof => "end of file".to_owned(),
        }
    }
}

struct Token {
    tok: Tok,
    line: u32,
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token>,
}

impl Parser<'_> {
    fn next(&mut self) -> Result<Token, SyntaxError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lexer.token(),
        }
    }

    fn peek(&mut self) -> Result<&Tok, SyntaxError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.token()?);
        }
        match &self.peeked {
            Some(token) => Ok(&token.tok),
            None => Ok(&Tok::Eof),
        }
    }

    fn body(&mut self, depth: usize, braced: bool) -> Result<Vec<Entry>, SyntaxError> {
        let mut entries = Vec::new();
        loop {
            match self.peek()? {
                Tok::RBrace if braced => {
                    self.next()?;
                    return Ok(entries);
                }
                Tok::Eof if braced => {
                    let line = self.lexer.line;
                    return Err(error(line, "missing '}' before the end of the file"));
                }
                Tok::Eof => return Ok(entries),
                _ => {}
            }

            entries.push(self.item(depth)?);

            // Items may be separated by commas, as in a list of maps.
            if self.peek()? == &Tok::Comma {
                self.next()?;
            }
        }
    }

    fn item(&mut self, depth: usize) -> Result<Entry, SyntaxError> {
        let mut keys: Vec<(String, u32)> = Vec::new();
        let is_block = loop {
            let token = self.next()?;
            match token.tok {
                Tok::Ident(name) | Tok::Str(name) => keys.push((name, token.line)),
                Tok::Assign if !keys.is_empty() => break false,
                Tok::LBrace if !keys.is_empty() => break true,
                other => {
                    let what = other.describe();
                    return Err(error(token.line, format!("expected a key, found {what}")));
                }
            }
        };

        let mut keys = keys.into_iter();
        let Some((key, line)) = keys.next() else {
            return Err(error(self.lexer.line, "expected a key"));
        };
        let labels: Vec<String> = keys.map(|(label, _)| label).collect();

        let value = if is_block {
            if depth > MAX_DEPTH {
                return Err(error(line, "nesting is too deep"));
            }
            let body = self.body(depth + 1, true)?;
            Node {
                value: Value::Object(body),
                line,
            }
        } else if !labels.is_empty() {
            return Err(error(
                line,
                format!("{key:?} has labels, so it must be a block {{ ... }}"),
            ));
        } else {
            self.value(depth + 1)?
        };
        Ok(Entry {
            key,
            line,
            labels,
            value,
        })
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let token = self.next()?;
        if depth > MAX_DEPTH {
            return Err(error(token.line, "nesting is too deep"));
        }

        let value = match token.tok {
            Tok::Str(text) => Value::Str(text),
            Tok::Int(number, form) => Value::Int(number, form),
            Tok::Float(number) => Value::Float(number),
            Tok::Ident(word) if word == "true" => Value::Bool(true),
            Tok::Ident(word) if word == "false" => Value::Bool(false),
            Tok::LBrace => Value::Object(self.body(depth + 1, true)?),
            Tok::LBrack => Value::List(self.list(depth + 1)?),
            other => {
                let what = other.describe();
                return Err(error(token.line, format!("expected a value, found {what}")));
            }
        };
        Ok(Node {
            value,
            line: token.line,
        })
    }

    fn list(&mut self, depth: usize) -> Result<Vec<Node>, SyntaxError> {
        let mut items = Vec::new();
        loop {
            if self.peek()? == &Tok::RBrack {
                self.next()?;
                return Ok(items);
            }
            items.push(self.value(depth)?);

            let token = self.next()?;
            match token.tok {
                Tok::Comma => {}
                Tok::RBrack => return Ok(items),
                other => {
                    let what = other.describe();
                    return Err(error(
                        token.line,
                        format!("expected ',' or ']', found {what}"),
                    ));
                }
            }
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
}

impl Lexer<'_> {
    fn peek_char(&self) -> Option<char> {
        self.src
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
    }

    fn peek_second(&self) -> Option<char> {
        self.src
            .get(self.pos..)
            .and_then(|rest| rest.chars().nth(1))
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn token(&mut self) -> Result<Token, SyntaxError> {
        self.skip_trivia()?;
        let line = self.line;
        let Some(c) = self.peek_char() else {
            return Ok(Token {
                tok: Tok::Eof,
                line,
            });
        };

        let single = match c {
            '{' => Some(Tok::LBrace),
            '}' => Some(Tok::RBrace),
            '[' => Some(Tok::LBrack),
            ']' => Some(Tok::RBrack),
            '=' => Some(Tok::Assign),
            ',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(tok) = single {
            self.bump();
            return Ok(Token { tok, line });
        }

        let tok = match c {
            '"' => Tok::Str(self.string()?),
            '<' if self.peek_second() == Some('<') => Tok::Str(self.heredoc()?),
            '0'..='9' => self.number()?,
            '-' if self.peek_second().is_some_and(|d| d.is_ascii_digit()) => self.number()?,
            c if c.is_alphabetic() || c == '_' => Tok::Ident(self.ident()),
            other => return Err(error(line, format!("unexpected character {other:?}"))),
        };
        Ok(Token { tok, line })
    }

    fn skip_trivia(&mut self) -> Result<(), SyntaxError> {
        loop {
            match (self.peek_char(), self.peek_second()) {
                (Some(c), _) if c.is_whitespace() || c == '\u{feff}' => {
                    self.bump();
                }
                (Some('#'), _) | (Some('/'), Some('/')) => {
                    while self.peek_char().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => {
                    let line = self.line;
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            Some('*') if self.peek_char() == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                            None => return Err(error(line, "comment is not closed with */")),
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while self
            .peek_char()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            self.bump();
        }
        self.src.get(start..self.pos).unwrap_or_default().to_owned()
    }

    fn number(&mut self) -> Result<Tok, SyntaxError> {
        let line = self.line;
        let start = self.pos;
        if self.peek_char() == Some('-') {
            self.bump();
        }
        let mut previous = ' ';
        while let Some(c) = self.peek_char() {
            let exponent_sign = (c == '+' || c == '-') && matches!(previous, 'e' | 'E');
            if !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || exponent_sign) {
                break;
            }
            previous = c;
            self.bump();
        }

        let text = self.src.get(start..self.pos).unwrap_or_default();
        number_token(text).ok_or_else(|| error(line, format!("invalid number {text:?}")))
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let line = self.line;
        self.bump();

        let mut out = String::new();
        // Inside `${...}` everything is copied verbatim, including nested quoted strings.
        let mut braces = 0usize;
        let mut nested_string = false;
        loop {
            let Some(c) = self.bump() else {
                return Err(error(line, "string is not closed with '\"'"));
            };
            if braces > 0 {
                out.push(c);
                match c {
                    '\\' if nested_string => {
                        if let Some(escaped) = self.bump() {
                            out.push(escaped);
                        }
                    }
                    '"' => nested_string = !nested_string,
                    '{' if !nested_string => braces += 1,
                    '}' if !nested_string => braces -= 1,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => return Ok(out),
                '\n' => {
                    return Err(error(
                        line,
                        "string is not closed before the end of the line",
                    ));
                }
                '\\' => self.escape(&mut out, line)?,
                '$' if self.peek_char() == Some('{') => {
                    self.bump();
                    out.push_str("${");
                    braces = 1;
                }
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self, out: &mut String, line: u32) -> Result<(), SyntaxError> {
        let Some(c) = self.bump() else {
            return Err(error(line, "string is not closed with '\"'"));
        };
        let simple = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            '\'' => Some('\''),
            _ => None,
        };
        if let Some(decoded) = simple {
            out.push(decoded);
            return Ok(());
        }

        let (radix, digits) = match c {
            'x' => (16, 2),
            'u' => (16, 4),
            'U' => (16, 8),
            '0'..='7' => (8, 2),
            other => return Err(error(line, format!("invalid escape sequence \\{other}"))),
        };
        let mut code = if radix == 8 {
            c.to_digit(8).unwrap_or(0)
        } else {
            0
        };
        for _ in 0..digits {
            let digit = self.bump().and_then(|d| d.to_digit(radix));
            let Some(digit) = digit else {
                return Err(error(line, format!("invalid escape sequence \\{c}")));
            };
            code = code.saturating_mul(radix).saturating_add(digit);
        }
        match char::from_u32(code) {
            Some(decoded) => out.push(decoded),
            None => {
                return Err(error(
                    line,
                    format!("escape \\{c} is not a valid character"),
                ));
            }
        }
        Ok(())
    }

    fn heredoc(&mut self) -> Result<String, SyntaxError> {
        let line = self.line;
        self.bump();
        self.bump();
        let indented = self.peek_char() == Some('-');
        if indented {
            self.bump();
        }
        let anchor = self.ident();
        if anchor.is_empty() {
            return Err(error(line, "heredoc needs an anchor name after <<"));
        }
        if self.peek_char() == Some('\r') {
            self.bump();
        }
        if self.bump() != Some('\n') {
            return Err(error(line, "heredoc anchor must end its line"));
        }

        let mut lines: Vec<&str> = Vec::new();
        loop {
            let rest = self.src.get(self.pos..).unwrap_or_default();
            if rest.is_empty() {
                return Err(error(line, format!("heredoc is not closed with {anchor}")));
            }
            let text = rest.split('\n').next().unwrap_or_default();
            for _ in 0..text.chars().count() {
                self.bump();
            }
            self.bump();
            let text = text.strip_suffix('\r').unwrap_or(text);
            if text.trim() == anchor {
                break;
            }
            lines.push(text);
        }

        let indent = if indented {
            let widths = lines.iter().filter(|l| !l.trim().is_empty());
            widths
                .map(|l| l.len() - l.trim_start().len())
                .min()
                .unwrap_or(0)
        } else {
            0
        };
        let mut out = String::new();
        for text in lines {
            out.push_str(text.get(indent..).unwrap_or(text.trim_start()));
            out.push('\n');
        }
        Ok(out)
    }
}

/// Go's base-0 integer rule, as HCL v1 applies it, plus floats.
pub(crate) fn number_token(text: &str) -> Option<Tok> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let signed = |value: i64| {
        if negative {
            value.checked_neg()
        } else {
            Some(value)
        }
    };

    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        let value = i64::from_str_radix(hex, 16).ok()?;
        return Some(Tok::Int(signed(value)?, IntForm::HclHex));
    }
    if body.contains(['.', 'e', 'E']) {
        let value: f64 = text.parse().ok()?;
        return value.is_finite().then_some(Tok::Float(value));
    }
    if !body.chars().all(|c| c.is_ascii_digit()) || body.is_empty() {
        return None;
    }
    if body.len() > 1 && body.starts_with('0') {
        let value = i64::from_str_radix(body, 8).ok()?;
        return Some(Tok::Int(signed(value)?, IntForm::HclOctal));
    }
    let value: i64 = body.parse().ok()?;
    Some(Tok::Int(signed(value)?, IntForm::HclDecimal))
}

fn error(line: u32, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        line,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` and renders the tree compactly, so each case reads as one line.
    fn check(text: &str, expected: &str) {
        let rendered = match parse(text) {
            Ok(entries) => render_entries(&entries),
            Err(e) => format!("error at {}: {}", e.line, e.message),
        };
        assert_eq!(rendered, expected, "input: {text}");
    }

    fn render_entries(entries: &[Entry]) -> String {
        let parts: Vec<String> = entries
            .iter()
            .map(|e| {
                let labels: String = e.labels.iter().map(|l| format!(" {l:?}")).collect();
                format!("{}{labels}@{}={}", e.key, e.line, render(&e.value.value))
            })
            .collect();
        parts.join(" ")
    }

    fn render(value: &Value) -> String {
        match value {
            Value::Null => "null".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i, form) => format!("{i}{form:?}"),
            Value::Float(f) => format!("{f}f"),
            Value::Str(s) => format!("{s:?}"),
            Value::List(items) => {
                let items: Vec<String> = items.iter().map(|n| render(&n.value)).collect();
                format!("[{}]", items.join(","))
            }
            Value::Object(entries) => format!("{{{}}}", render_entries(entries)),
        }
    }

    #[test]
    fn literals() {
        check("mode = 0640", "mode@1=416HclOctal");
        check("mode = 640", "mode@1=640HclDecimal");
        check("m = 0x1f", "m@1=31HclHex");
        check("m = -1", "m@1=-1HclDecimal");
        check("m = 0", "m@1=0HclDecimal");
        check("f = 1.5", "f@1=1.5f");
        check("f = 1e3", "f@1=1000f");
        check("m = 08", "error at 1: invalid number \"08\"");
        check("m = 10s", "error at 1: invalid number \"10s\"");
        check("b = true\nc = false", "b@1=true c@2=false");
        check("s = \"a\\tb\\\"c\\u00e9\"", "s@1=\"a\\tb\\\"cé\"");
        check("s = \"${foo(\"x\")}\"", "s@1=\"${foo(\\\"x\\\")}\"");
        check(
            "s = \"{{ with secret \\\"k\\\" }}\"",
            "s@1=\"{{ with secret \\\"k\\\" }}\"",
        );
        check("l = [1, \"a\", [true],]", "l@1=[1HclDecimal,\"a\",[true]]");
    }

    #[test]
    fn hcl1_only_syntax() {
        // Several items on one line, with no separators at all.
        check(
            "sink { type = \"file\" config = { path = \"/t\" } }",
            "sink@1={type@1=\"file\" config@1={path@1=\"/t\"}}",
        );
        // A block inside an object attribute.
        check(
            "auto_auth = { method \"k8s\" { x = 1 } }",
            "auto_auth@1={method \"k8s\"@1={x@1=1HclDecimal}}",
        );
        check("\"quoted\" = 1", "quoted@1=1HclDecimal");
        check("a = 1, b = 2", "a@1=1HclDecimal b@1=2HclDecimal");
    }

    #[test]
    fn blocks_labels_and_comments() {
        check(
            "# c\n// c\n/* c\n */ listener \"tcp\" {\n address = \"x\"\n}",
            "listener \"tcp\"@4={address@5=\"x\"}",
        );
        check("a \"b\" \"c\" {}", "a \"b\" \"c\"@1={}");
        check(
            "a \"b\" = 1",
            "error at 1: \"a\" has labels, so it must be a block { ... }",
        );
    }

    #[test]
    fn heredocs() {
        check(
            "c = <<EOT\nline1\n  line2\nEOT\n",
            "c@1=\"line1\\n  line2\\n\"",
        );
        check(
            "c = <<-EOT\n    a\n      b\n    EOT\nx = 1",
            "c@1=\"a\\n  b\\n\" x@5=1HclDecimal",
        );
        check(
            "c = <<EOT\nnever closed",
            "error at 1: heredoc is not closed with EOT",
        );
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        check(
            "a = 1\nb = ",
            "error at 2: expected a value, found end of file",
        );
        check(
            "a {\n b = 1\n",
            "error at 3: missing '}' before the end of the file",
        );
        check(
            "a = \"x\n\"",
            "error at 1: string is not closed before the end of the line",
        );
        check("= 1", "error at 1: expected a key, found '='");
        check(
            "a = [1 2]",
            "error at 1: expected ',' or ']', found a number",
        );
        check("a = @", "error at 1: unexpected character '@'");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = format!("a = {}{}", "[".repeat(10_000), "]".repeat(10_000));
        check(&text, "error at 1: nesting is too deep");
        let text = format!("{}{}", "a {".repeat(10_000), "}".repeat(10_000));
        assert!(parse(&text).is_err());
    }
}
