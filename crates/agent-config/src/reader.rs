//! Typed reads from one block of the canonical tree, recording which keys the decoder knows.
//!
//! Each decoder asks a [`Reader`] for the keys it understands; whatever was never asked for is
//! an unknown key, reported with the closest known key. Keeping "known keys" as "keys asked
//! for" means the suggestion list can never drift from the decoder.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::env::Environment;
use crate::error::{ConfigError, Location, Warning};
use crate::model::KeyLines;
use crate::scalar;
use crate::tree::{Entry, Value};

/// Decoding state of one file.
pub(crate) struct Cx<'e> {
    pub(crate) file: Arc<str>,
    pub(crate) warnings: Vec<Warning>,
    pub(crate) env: &'e Environment,
}

impl Cx<'_> {
    pub(crate) fn location(&self, line: u32) -> Location {
        Location::new(&self.file, line)
    }

    pub(crate) fn warn(&mut self, line: u32, key: &str, message: impl Into<String>) {
        let warning = Warning {
            location: self.location(line),
            key: key.to_owned(),
            message: message.into(),
        };
        self.warnings.push(warning);
    }
}

/// The body of one block: its entries, labels and the line it starts on.
#[derive(Clone, Copy)]
pub(crate) struct Block<'t> {
    pub(crate) line: u32,
    pub(crate) labels: &'t [String],
    pub(crate) entries: &'t [Entry],
}

/// How unknown keys of a block are treated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unknown {
    /// A warning, as for most blocks (Vault silently ignores them).
    Warn,
    /// An error, as for `template`, `env_template` and `exec`.
    Reject,
}

pub(crate) struct Reader<'t> {
    file: Arc<str>,
    pub(crate) path: String,
    pub(crate) block: Block<'t>,
    asked: Vec<&'static str>,
    ignored: Vec<&'static str>,
    ignored_prefixes: Vec<&'static str>,
    lines: KeyLines,
}

impl<'t> Reader<'t> {
    pub(crate) fn new(cx: &Cx<'_>, path: impl Into<String>, block: Block<'t>) -> Reader<'t> {
        let lines = KeyLines {
            block: Some(cx.location(block.line)),
            ..KeyLines::default()
        };
        Reader {
            file: Arc::clone(&cx.file),
            path: path.into(),
            block,
            asked: Vec::new(),
            ignored: Vec::new(),
            ignored_prefixes: Vec::new(),
            lines,
        }
    }

    pub(crate) fn location(&self) -> Location {
        Location::new(&self.file, self.block.line)
    }

    pub(crate) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(crate) fn error(&self, key: &str, line: u32, message: impl Into<String>) -> ConfigError {
        let key = if key.is_empty() {
            self.path.clone()
        } else {
            self.key_path(key)
        };
        ConfigError::new(Location::new(&self.file, line), key, message)
    }

    /// A required `key` is missing. When the block holds a misspelling of it, that is the more
    /// useful thing to report.
    pub(crate) fn missing(&self, key: &str, line: u32, message: &str) -> ConfigError {
        let typo = self.block.entries.iter().find(|e| {
            e.key != key
                && !self.asked.contains(&e.key.as_str())
                && closest(&e.key, &[key]).is_some()
        });
        match typo {
            Some(entry) => {
                let message = format!("unknown key (did you mean \"{key}\"?)");
                self.error(&entry.key, entry.line, message)
            }
            None => self.error(key, line, message),
        }
    }

    /// Every entry named `key`, in order; the key counts as known from now on.
    pub(crate) fn entries(&mut self, key: &'static str) -> Vec<&'t Entry> {
        if !self.asked.contains(&key) {
            self.asked.push(key);
        }
        let found: Vec<&'t Entry> = self.block.entries.iter().filter(|e| e.key == key).collect();
        if let Some(first) = found.first() {
            self.lines
                .keys
                .insert(key.to_owned(), Location::new(&self.file, first.line));
        }
        found
    }

    /// The last entry named `key`: for a scalar written twice, the later one wins.
    pub(crate) fn last(&mut self, key: &'static str) -> Option<&'t Entry> {
        let last = self.entries(key).pop()?;
        self.lines
            .keys
            .insert(key.to_owned(), Location::new(&self.file, last.line));
        Some(last)
    }

    pub(crate) fn read<T>(
        &mut self,
        key: &'static str,
        read: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(entry) = self.last(key) else {
            return Ok(None);
        };
        if entry.value.value == Value::Null {
            return Ok(None);
        }
        read(&entry.value.value)
            .map(Some)
            .map_err(|message| self.error(key, entry.line, message))
    }

    pub(crate) fn string(&mut self, key: &'static str) -> Result<Option<String>, ConfigError> {
        let value = self.read(key, scalar::string)?;
        Ok(value.filter(|s| !s.is_empty()))
    }

    pub(crate) fn path(&mut self, key: &'static str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.string(key)?.map(PathBuf::from))
    }

    pub(crate) fn bool(&mut self, key: &'static str) -> Result<Option<bool>, ConfigError> {
        self.read(key, scalar::boolean)
    }

    pub(crate) fn flag(&mut self, key: &'static str) -> Result<bool, ConfigError> {
        Ok(self.bool(key)?.unwrap_or(false))
    }

    pub(crate) fn duration(&mut self, key: &'static str) -> Result<Option<Duration>, ConfigError> {
        self.read(key, scalar::duration)
    }

    pub(crate) fn int(&mut self, key: &'static str) -> Result<Option<i64>, ConfigError> {
        self.read(key, scalar::integer)
    }

    pub(crate) fn mode(&mut self, key: &'static str) -> Result<Option<u32>, ConfigError> {
        self.read(key, scalar::mode)
    }

    /// An id such as a uid: a non-negative number, or -1 for "leave unchanged".
    pub(crate) fn id(&mut self, key: &'static str) -> Result<Option<u32>, ConfigError> {
        let value = self.read(key, |value| match scalar::integer(value)? {
            -1 => Ok(None),
            id => u32::try_from(id)
                .map(Some)
                .map_err(|_| format!("{id} is not a valid id; use 0 or more, or -1 for unchanged")),
        })?;
        Ok(value.flatten())
    }

    /// A list of strings; a single string is a list of one.
    pub(crate) fn strings(
        &mut self,
        key: &'static str,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        self.read(key, |value| match value {
            Value::List(items) => items.iter().map(|n| scalar::string(&n.value)).collect(),
            other => scalar::string(other).map(|s| vec![s]),
        })
    }

    /// Every block named `key`: `key {}` written any number of times, `key = {}`, or a list of
    /// objects (`key = [{...}]`, JSON `"key": [{...}]`).
    pub(crate) fn blocks(&mut self, key: &'static str) -> Result<Vec<Block<'t>>, ConfigError> {
        let mut blocks = Vec::new();
        for entry in self.entries(key) {
            match &entry.value.value {
                Value::Object(entries) => {
                    blocks.push(Block {
                        line: entry.line,
                        labels: &entry.labels,
                        entries,
                    });
                }
                Value::List(items) => {
                    for item in items {
                        let Value::Object(entries) = &item.value else {
                            let found = item.value.kind();
                            return Err(self.error(
                                key,
                                item.line,
                                format!("expected a block, found {found}"),
                            ));
                        };
                        blocks.push(Block {
                            line: item.line,
                            labels: &entry.labels,
                            entries,
                        });
                    }
                }
                Value::Null => {}
                other => {
                    let found = other.kind();
                    return Err(self.error(
                        key,
                        entry.line,
                        format!("expected a block, found {found}"),
                    ));
                }
            }
        }
        Ok(blocks)
    }

    /// A block that may appear at most once in this scope.
    pub(crate) fn singleton(
        &mut self,
        key: &'static str,
    ) -> Result<Option<Block<'t>>, ConfigError> {
        let mut blocks = self.blocks(key)?;
        if let Some(second) = blocks.get(1) {
            let line = second.line;
            return Err(self.error(
                key,
                line,
                format!("at most one \"{key}\" block is allowed here"),
            ));
        }
        Ok(blocks.pop())
    }

    /// The block's type: its one label, or else its `type` key; lower-cased.
    pub(crate) fn kind(&mut self) -> Result<Option<String>, ConfigError> {
        let written = self.string("type")?;
        match self.block.labels {
            [] => Ok(written.map(|t| t.to_lowercase())),
            [label] => Ok(Some(label.to_lowercase())),
            [_, extra, ..] => {
                let line = self.block.line;
                Err(self.error(
                    "",
                    line,
                    format!("takes one label, found a second one ({extra:?})"),
                ))
            }
        }
    }

    /// Keys understood but without effect here: present ones get a warning, never an error.
    pub(crate) fn ignore(&mut self, keys: &[&'static str]) {
        self.ignored.extend_from_slice(keys);
    }

    pub(crate) fn ignore_prefixed(&mut self, prefixes: &[&'static str]) {
        self.ignored_prefixes.extend_from_slice(prefixes);
    }

    /// Reports keys nobody asked for and returns where each known key was written.
    pub(crate) fn finish(self, cx: &mut Cx<'_>, unknown: Unknown) -> Result<KeyLines, ConfigError> {
        for entry in self.block.entries {
            let key = entry.key.as_str();
            if self.asked.contains(&key) {
                continue;
            }
            let path = self.key_path(key);
            let is_ignored = self.ignored.contains(&key)
                || self
                    .ignored_prefixes
                    .iter()
                    .any(|prefix| key.starts_with(prefix));
            if is_ignored {
                let message =
                    format!("key \"{path}\" is accepted for compatibility but has no effect");
                cx.warn(entry.line, &path, message);
                continue;
            }

            let hint = match closest(key, &self.asked) {
                Some(known) => format!(" (did you mean \"{known}\"?)"),
                None => String::new(),
            };
            match unknown {
                Unknown::Warn => {
                    cx.warn(entry.line, &path, format!("unknown key \"{path}\"{hint}"))
                }
                Unknown::Reject => {
                    let allowed = self.asked.join(", ");
                    let message = format!("unknown key{hint}; allowed keys: {allowed}");
                    return Err(self.error(key, entry.line, message));
                }
            }
        }
        Ok(self.lines)
    }
}

/// The known key closest to `key` by edit distance, if it is close enough to be a typo.
pub(crate) fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let (best, distance) = known
        .iter()
        .map(|candidate| (*candidate, edit_distance(key, candidate)))
        .min_by_key(|(_, distance)| *distance)?;
    let limit = (key.chars().count() / 3).max(2);
    (distance <= limit).then_some(best)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_keys_only() {
        let known = ["auto_auth", "cache", "listener", "vault", "template_config"];
        let cases = [
            ("auto_auht", Some("auto_auth")),
            ("listner", Some("listener")),
            ("vualt", Some("vault")),
            ("templateconfig", Some("template_config")),
            ("zzzzzz", None),
            ("", None),
        ];
        for (key, expected) in cases {
            assert_eq!(closest(key, &known), expected, "{key}");
        }
    }
}
