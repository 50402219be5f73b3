//! Scope lists typed on a command line, checked more strictly than the grammar.
//!
//! The grammar ([`docs/scopes.md`](https://github.com/mantatech/manta-rs/blob/main/docs/scopes.md)) accepts bare words such as `execute_tasks`, so
//! `--scopes "cluster read"` parses as the two scopes `cluster` and `read`, which grant
//! nothing a user meant. A bare word that is one half of `resource:action` is therefore
//! refused where people type scopes, with the scope they probably meant.

/// The resources of the published permissions, plus `admin` and `results`.
const RESOURCES: [&str; 9] = [
    "admin", "user", "cluster", "swarm", "module", "node", "role", "network", "results",
];

/// The actions of the published permissions, plus the `write` alias.
const ACTIONS: [&str; 11] = [
    "create", "read", "update", "delete", "list", "start", "stop", "deploy", "upload", "download",
    "write",
];

/// A typed scope without `:` that is only half of a scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope `{word}` has no `:` and grants nothing useful; did you mean `{suggestion}`?")]
pub struct HalfScope {
    /// The word as typed.
    pub word: String,
    /// The `resource:action` scope it was probably meant to be part of.
    pub suggestion: String,
}

/// Checks the scopes of one command line, in the order typed: a bare resource or action
/// name (such as `cluster` or `read`) is refused, suggesting the scope it and its
/// neighbour make (`cluster read` → `cluster:read`). Other scopes are left to the grammar.
///
/// # Errors
/// [`HalfScope`] for the first such word.
pub fn check_typed_scopes<S: AsRef<str>>(scopes: &[S]) -> Result<(), HalfScope> {
    let words: Vec<&str> = scopes.iter().map(AsRef::as_ref).collect();
    for (i, word) in words.iter().enumerate() {
        let is_resource = RESOURCES.contains(word);
        let is_action = ACTIONS.contains(word);
        if !is_resource && !is_action {
            continue;
        }
        let next = words.get(i + 1).filter(|n| ACTIONS.contains(*n));
        let suggestion = match (is_resource, next) {
            (true, Some(action)) => format!("{word}:{action}"),
            (true, None) if *word == "admin" => "admin:*".to_owned(),
            (true, None) => format!("{word}:*"),
            (false, _) => match i.checked_sub(1).and_then(|p| words.get(p)) {
                Some(prev) if RESOURCES.contains(prev) => format!("{prev}:{word}"),
                _ => format!("*:{word}"),
            },
        };
        return Err(HalfScope {
            word: (*word).to_owned(),
            suggestion,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(typed: &[&str], expected: Option<(&str, &str)>) {
        let got = check_typed_scopes(typed).err();
        let got = got
            .as_ref()
            .map(|e| (e.word.as_str(), e.suggestion.as_str()));
        assert_eq!(got, expected, "{typed:?}");
    }

    #[test]
    fn halves_of_a_scope_are_refused_with_the_whole_one() {
        check(&["cluster", "read"], Some(("cluster", "cluster:read")));
        check(&["swarm:deploy", "read"], Some(("read", "*:read")));
        check(&["cluster"], Some(("cluster", "cluster:*")));
        check(&["admin"], Some(("admin", "admin:*")));
        check(
            &["cluster:read", "swarm:*", "admin:*", "execute_tasks"],
            None,
        );
        check(&["node_pool:list", "access_datasets"], None);
        let text = check_typed_scopes(&["cluster", "read"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            text,
            "scope `cluster` has no `:` and grants nothing useful; did you mean `cluster:read`?"
        );
    }
}
