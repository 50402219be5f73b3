//! Fuzzes the authorization layer's path handling: no path may panic, the name recorded in
//! the audit trail is one of a fixed set of short printable names, and a path is recorded as
//! sent only when it is a method with a rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manta_manager::authz::{UNKNOWN_SERVICE, access_for, audited_method};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let access = access_for(path);
    let audited = audited_method(path);
    assert!(audited.len() <= 128, "{audited:?}");
    assert!(
        audited.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
        "{audited:?}"
    );
    let fixed = audited == UNKNOWN_SERVICE || audited.ends_with("/<unknown>");
    if fixed {
        // The recorded name of an unknown method never names a rule of its own.
        assert!(access_for(audited).is_none_or(|a| a == manta_manager::authz::Access::Public));
    } else {
        // Any other name is the path itself, and only for a method with a rule.
        assert_eq!(audited, path);
        assert!(access.is_some(), "{path:?} recorded as sent without a rule");
    }
    // Audit names are stable: recording the recorded name again gives the same name.
    assert_eq!(audited_method(audited), audited);
});
