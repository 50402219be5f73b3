//! Fuzzes the scope parser and matcher: no input may panic, and a parsed scope must print
//! back to the same string and cover itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manta_auth::{Scope, ScopeSet};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(scope) = Scope::parse(s) {
        assert_eq!(scope.to_string(), s);
        assert!(scope.covers(&scope));
    }
    if let Ok(set) = ScopeSet::parse_spaced(s) {
        for member in set.scopes() {
            assert!(set.covers(member));
        }
        let _ = set.to_user_permissions();
    }
});
