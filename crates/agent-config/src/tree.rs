//! The canonical tree both front-ends (HCL v1 and JSON) produce.
//!
//! It keeps what the typed decoder needs and nothing of the surface syntax: every key with its
//! line, block labels, repeated keys as repeated entries (never merged, so "written once" and
//! "written twice" look alike), and for integers the way they were written, because HCL v1 reads
//! `0640` as octal and a bare `640` is ambiguous for a file mode.

/// One value with the line it starts on.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub(crate) value: Value,
    pub(crate) line: u32,
}

/// How an integer literal was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntForm {
    /// HCL without a leading zero: `640`.
    HclDecimal,
    /// HCL with a leading zero: `0640`.
    HclOctal,
    /// HCL with `0x`: `0x1f`.
    HclHex,
    /// JSON: always decimal.
    Json,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64, IntForm),
    Float(f64),
    Str(String),
    List(Vec<Node>),
    Object(Vec<Entry>),
}

/// `key "label" ... = value` or `key "label" ... { body }`; JSON keys never have labels.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) line: u32,
    pub(crate) labels: Vec<String>,
    pub(crate) value: Node,
}

impl Value {
    /// A short name of the kind of value, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(..) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Object(_) => "a block",
        }
    }
}

/// Deepest nesting either front-end accepts, so hostile input cannot exhaust the stack.
pub(crate) const MAX_DEPTH: usize = 64;
