//! Differential test of the HCL v1 parser against hcl-edit (an HCL 2 parser) on the reference
//! fixtures, which both grammars accept: the two must build the same tree, once HCL v1's
//! base-0 integer rule is applied to the raw number text hcl-edit keeps.

use std::path::PathBuf;

use hcl_edit::Span;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{Body, Structure};

use crate::hcl1::{self, Tok};
use crate::tree::{Entry, Node, Value};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/openbao-configs")
}

#[test]
fn hcl1_parser_agrees_with_hcl_edit_on_every_fixture() {
    let mut compared = 0;
    let entries = std::fs::read_dir(fixtures_dir()).expect("the fixtures directory must exist");
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "hcl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();

        let ours = hcl1::parse(&text).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let body: Body = hcl_edit::parser::parse_body(&text).unwrap();
        let theirs = from_body(&body, &text);

        assert_eq!(without_lines(ours), theirs, "{}", path.display());
        compared += 1;
    }
    assert!(compared >= 40, "only {compared} fixtures compared");
}

fn without_lines(entries: Vec<Entry>) -> Vec<Entry> {
    entries
        .into_iter()
        .map(|e| Entry {
            line: 0,
            value: node_without_lines(e.value),
            ..e
        })
        .collect()
}

fn node_without_lines(node: Node) -> Node {
    let value = match node.value {
        Value::List(items) => Value::List(items.into_iter().map(node_without_lines).collect()),
        Value::Object(entries) => Value::Object(without_lines(entries)),
        other => other,
    };
    Node { value, line: 0 }
}

fn from_body(body: &Body, src: &str) -> Vec<Entry> {
    body.iter()
        .map(|structure| match structure {
            Structure::Attribute(attr) => Entry {
                key: attr.key.as_str().to_owned(),
                line: 0,
                labels: Vec::new(),
                value: from_expr(&attr.value, src),
            },
            Structure::Block(block) => Entry {
                key: block.ident.as_str().to_owned(),
                line: 0,
                labels: block.labels.iter().map(|l| l.as_str().to_owned()).collect(),
                value: Node {
                    value: Value::Object(from_body(&block.body, src)),
                    line: 0,
                },
            },
        })
        .collect()
}

fn from_expr(expr: &Expression, src: &str) -> Node {
    let value = match expr {
        Expression::Null(_) => Value::Null,
        Expression::Bool(b) => Value::Bool(*b.value()),
        Expression::Number(n) => {
            let raw = n
                .span()
                .and_then(|span| src.get(span))
                .expect("numbers keep their span");
            match hcl1::number_token(raw) {
                Some(Tok::Int(i, form)) => Value::Int(i, form),
                Some(Tok::Float(f)) => Value::Float(f),
                other => panic!("number {raw:?} read as {other:?}"),
            }
        }
        Expression::String(s) => Value::Str(s.value().clone()),
        Expression::Array(items) => Value::List(items.iter().map(|e| from_expr(e, src)).collect()),
        Expression::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, value)| Entry {
                    key: match key {
                        ObjectKey::Ident(ident) => ident.as_str().to_owned(),
                        ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                        other => panic!("unexpected object key {other:?}"),
                    },
                    line: 0,
                    labels: Vec::new(),
                    value: from_expr(value.expr(), src),
                })
                .collect(),
        ),
        other => panic!("the fixtures hold no such expression: {other:?}"),
    };
    Node { value, line: 0 }
}
