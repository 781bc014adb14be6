//! The process environment, passed in explicitly so tests never touch `std::env`.

use std::collections::BTreeMap;
use std::fmt;

/// Environment variables the loader may read (`VAULT_*`, `BAO_*`, a sink's `aad_env_var`).
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// A snapshot of this process's environment; variables that are not valid UTF-8 are skipped.
    pub fn from_process() -> Environment {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Environment { vars }
    }

    /// An environment holding exactly these variables.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Environment
    where
        K: Into<String>,
        V: Into<String>,
    {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Environment { vars }
    }

    /// The value of `name`, if set (possibly empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// OpenBao's rule: `BAO_<suffix>` when present, even empty; else `VAULT_<suffix>`.
    /// Returns the variable's name with its value.
    pub(crate) fn bao_or_vault(&self, suffix: &str) -> Option<(String, &str)> {
        [format!("BAO_{suffix}"), format!("VAULT_{suffix}")]
            .into_iter()
            .find_map(|name| self.get(&name).map(|value| (name.clone(), value)))
    }
}

impl fmt::Debug for Environment {
    /// Names only: values may be credentials (`VAULT_TOKEN`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bao_wins_over_vault_even_when_empty() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<(&'a str, &'a str)>);
        let cases: &[Case<'_>] = &[
            (&[("VAULT_ADDR", "v")], Some(("VAULT_ADDR", "v"))),
            (
                &[("VAULT_ADDR", "v"), ("BAO_ADDR", "b")],
                Some(("BAO_ADDR", "b")),
            ),
            (
                &[("VAULT_ADDR", "v"), ("BAO_ADDR", "")],
                Some(("BAO_ADDR", "")),
            ),
            (&[("OTHER", "x")], None),
        ];
        for (pairs, expected) in cases {
            let env = Environment::from_pairs(pairs.iter().copied());
            let got = env.bao_or_vault("ADDR");
            let got = got.as_ref().map(|(name, value)| (name.as_str(), *value));
            assert_eq!(got, *expected, "{pairs:?}");
        }
    }

    #[test]
    fn debug_shows_names_not_values() {
        let env = Environment::from_pairs([("VAULT_TOKEN", "s.secret")]);
        let shown = format!("{env:?}");
        assert!(
            shown.contains("VAULT_TOKEN") && !shown.contains("s.secret"),
            "{shown}"
        );
    }
}
