//! The environment variables a configuration is substituted from, injectable for tests.

use std::collections::HashMap;
use std::fmt;

use zeroize::Zeroizing;

/// A source of environment variables.
///
/// Production code uses [`Env::process`]; tests use [`Env::from_pairs`] so they never mutate
/// the process environment (which is shared between test threads). Values are handed out in
/// [`Zeroizing`] buffers because a variable may hold a token.
#[derive(Clone)]
pub struct Env {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Process,
    Map(HashMap<String, Zeroizing<String>>),
}

impl Env {
    /// The real process environment, read at each lookup.
    pub fn process() -> Self {
        Self {
            inner: Inner::Process,
        }
    }

    /// A fixed set of variables; anything else is unset.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), Zeroizing::new(v.into())))
            .collect();
        Self {
            inner: Inner::Map(map),
        }
    }

    /// The value of `name`, or `None` when unset. A variable whose value is not valid
    /// Unicode counts as unset, as it cannot appear in a TOML document.
    pub fn get(&self, name: &str) -> Option<Zeroizing<String>> {
        match &self.inner {
            Inner::Process => std::env::var(name).ok().map(Zeroizing::new),
            Inner::Map(map) => map.get(name).cloned(),
        }
    }

    /// The value of `name` when set and not empty.
    pub fn get_non_empty(&self, name: &str) -> Option<Zeroizing<String>> {
        self.get(name).filter(|v| !v.is_empty())
    }
}

impl fmt::Debug for Env {
    // Variable values may be secrets, so only the names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Process => f.write_str("Env::process()"),
            Inner::Map(map) => {
                let mut names: Vec<&String> = map.keys().collect();
                names.sort();
                f.debug_struct("Env").field("names", &names).finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_reads_only_its_pairs_and_debug_hides_values() {
        let env = Env::from_pairs([("A", "secret-value"), ("EMPTY", "")]);
        assert_eq!(
            env.get("A").as_deref().map(String::as_str),
            Some("secret-value")
        );
        assert!(
            env.get("PATH").is_none(),
            "process variables must not leak in"
        );
        assert!(env.get("EMPTY").is_some());
        assert!(env.get_non_empty("EMPTY").is_none());
        let debug = format!("{env:?}");
        assert!(
            debug.contains("\"A\"") && !debug.contains("secret-value"),
            "{debug}"
        );
    }
}
