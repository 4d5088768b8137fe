//! URI validation and match policies (WAMP basic profile "URIs", advanced
//! profile pattern-based subscription/registration).
//!
//! All checks are single byte loops over a 256-entry class table: they run on
//! every PUBLISH/CALL, so no regex engine and no allocation.

/// How a SUBSCRIBE/REGISTER URI is matched against PUBLISH topics / CALL
/// procedures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchPolicy {
    Exact,
    Prefix,
    Wildcard,
}

impl MatchPolicy {
    /// From the SUBSCRIBE/REGISTER option `match`: `None` → `Exact`;
    /// `"exact" | "prefix" | "wildcard"`; anything else is an error (the
    /// router answers with `wamp.error.invalid_argument`).
    #[allow(clippy::result_unit_err)]
    pub fn from_option(s: Option<&str>) -> Result<Self, ()> {
        match s {
            None | Some("exact") => Ok(MatchPolicy::Exact),
            Some("prefix") => Ok(MatchPolicy::Prefix),
            Some("wildcard") => Ok(MatchPolicy::Wildcard),
            Some(_) => Err(()),
        }
    }

    /// The option value as it appears on the wire (and in meta events).
    pub fn as_str(self) -> &'static str {
        match self {
            MatchPolicy::Exact => "exact",
            MatchPolicy::Prefix => "prefix",
            MatchPolicy::Wildcard => "wildcard",
        }
    }
}

/// Byte classes for the validation loop.
const OK: u8 = 0; // allowed in loose and strict components
const LOOSE: u8 = 1; // allowed only in loose components
const DOT: u8 = 2; // component separator
const BAD: u8 = 3; // '#' or ASCII whitespace: never allowed
const HIGH: u8 = 4; // non-ASCII byte: loose only, needs a Unicode whitespace check

static CLASS: [u8; 256] = build_class_table();

const fn build_class_table() -> [u8; 256] {
    let mut t = [LOOSE; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b >= 0x80 {
            HIGH
        } else if b == b'.' {
            DOT
        } else if b == b'#'
            // Python's `\s` (used by the spec's regexes) matches these for str.
            || b == b' '
            || (b >= 0x09 && b <= 0x0d)
            || (b >= 0x1c && b <= 0x1f)
        {
            BAD
        } else if b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'_' {
            OK
        } else {
            LOOSE
        };
        i += 1;
    }
    t
}

/// Where empty components are tolerated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Empty {
    /// None: `a.b.c` (concrete URIs, exact patterns).
    Never,
    /// Only the last one: `a.b.` (prefix patterns; the empty string too).
    Last,
    /// Anywhere: `a..c`, `.b`, `a.`, `` (wildcard patterns).
    Any,
}

#[inline]
fn check(uri: &str, strict: bool, empty: Empty) -> bool {
    let mut comp_len = 0usize;
    let mut high = false;
    for &b in uri.as_bytes() {
        match CLASS[b as usize] {
            OK => comp_len += 1,
            DOT => {
                if comp_len == 0 && empty != Empty::Any {
                    return false;
                }
                comp_len = 0;
            }
            LOOSE if !strict => comp_len += 1,
            HIGH if !strict => {
                high = true;
                comp_len += 1;
            }
            _ => return false,
        }
    }
    if comp_len == 0 && empty == Empty::Never {
        return false;
    }
    // Rare path: only non-ASCII URIs pay for char decoding.
    !(high && uri.chars().any(char::is_whitespace))
}

/// A concrete URI (PUBLISH topic, CALL procedure, error URI, realm).
///
/// Loose rules: components non-empty, no whitespace, no `#`.
/// Strict rules: `^([0-9a-z_]+\.)*([0-9a-z_]+)$`.
pub fn is_valid_uri(uri: &str, strict: bool) -> bool {
    check(uri, strict, Empty::Never)
}

/// A URI given with a match policy in SUBSCRIBE/REGISTER.
///
/// * exact: same as [`is_valid_uri`].
/// * prefix: prefix matching is a plain string prefix, so a pattern may end
///   in a dot (`com.myapp.` matches children of `com.myapp` but not
///   `com.myapp2`); only the last component may be empty, which also admits
///   the empty pattern (matches every URI).
/// * wildcard: the spec's "empty URI components allowed" regex
///   `^(([^\s\.#]+\.)|\.)*([^\s\.#]+)?$` — any component may be empty (an
///   empty component is the wildcard), including the whole pattern `""`,
///   which matches any single-component URI.
pub fn is_valid_pattern(uri: &str, policy: MatchPolicy, strict: bool) -> bool {
    let empty = match policy {
        MatchPolicy::Exact => Empty::Never,
        MatchPolicy::Prefix => Empty::Last,
        MatchPolicy::Wildcard => Empty::Any,
    };
    check(uri, strict, empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_option() {
        assert_eq!(MatchPolicy::from_option(None), Ok(MatchPolicy::Exact));
        assert_eq!(
            MatchPolicy::from_option(Some("exact")),
            Ok(MatchPolicy::Exact)
        );
        assert_eq!(
            MatchPolicy::from_option(Some("prefix")),
            Ok(MatchPolicy::Prefix)
        );
        assert_eq!(
            MatchPolicy::from_option(Some("wildcard")),
            Ok(MatchPolicy::Wildcard)
        );
        assert_eq!(MatchPolicy::from_option(Some("Prefix")), Err(()));
        assert_eq!(MatchPolicy::from_option(Some("")), Err(()));
        for p in [
            MatchPolicy::Exact,
            MatchPolicy::Prefix,
            MatchPolicy::Wildcard,
        ] {
            assert_eq!(MatchPolicy::from_option(Some(p.as_str())), Ok(p));
        }
    }

    #[test]
    fn loose_uris() {
        for ok in [
            "com.myapp.mytopic1",
            "com.myapp.myprocedure1",
            "wamp.error.no_such_procedure",
            "a",
            "com.MyApp.Topic-1",
            "com.myapp.topic:x",
            "de.äöü.ü",
            "a/b.c@d",
        ] {
            assert!(is_valid_uri(ok, false), "{ok:?}");
        }
        for bad in [
            "",
            ".",
            "a.",
            ".a",
            "a..b",
            "a b",
            "a.b\t",
            "a\n",
            "a#b",
            "com.myapp.#",
            "a.\u{a0}b",   // no-break space
            "a.b\u{3000}", // ideographic space
            "a\u{1c}",
        ] {
            assert!(!is_valid_uri(bad, false), "{bad:?}");
        }
    }

    #[test]
    fn strict_uris() {
        for ok in ["com.myapp.mytopic1", "a_b.c1.2", "wamp.session.on_join"] {
            assert!(is_valid_uri(ok, true), "{ok:?}");
        }
        for bad in [
            "",
            "Com.myapp",
            "com.my-app",
            "com.myapp.",
            "a..b",
            "a:b",
            "de.äöü",
            "a b",
            "a#",
        ] {
            assert!(!is_valid_uri(bad, true), "{bad:?}");
        }
    }

    #[test]
    fn exact_patterns_are_uris() {
        for s in ["a.b", "a..b", "a.", "", "a b", "A.b"] {
            for strict in [false, true] {
                assert_eq!(
                    is_valid_pattern(s, MatchPolicy::Exact, strict),
                    is_valid_uri(s, strict),
                    "{s:?}"
                );
            }
        }
    }

    #[test]
    fn prefix_patterns() {
        let p = MatchPolicy::Prefix;
        for ok in [
            "com.myapp.topic.emergency",
            "com.myapp.",
            "com",
            "",
            "com.myapp.myobject1",
        ] {
            assert!(is_valid_pattern(ok, p, false), "{ok:?}");
            assert!(is_valid_pattern(ok, p, true), "{ok:?}");
        }
        assert!(is_valid_pattern("com.My-App.", p, false));
        assert!(!is_valid_pattern("com.My-App.", p, true));
        for bad in ["a..b", ".a", "..", "a..", "a#", "a b.", "a.b\n"] {
            assert!(!is_valid_pattern(bad, p, false), "{bad:?}");
        }
    }

    #[test]
    fn wildcard_patterns() {
        let p = MatchPolicy::Wildcard;
        for ok in [
            "com.myapp..userevent",
            "com.myapp..myprocedure1",
            ".a.b",
            "a.b.",
            "a..",
            "..",
            ".",
            "",
            "a1.b2..d4.e5..g7",
            "a.b",
        ] {
            assert!(is_valid_pattern(ok, p, false), "{ok:?}");
            assert!(is_valid_pattern(ok, p, true), "{ok:?}");
        }
        assert!(is_valid_pattern("com..Foo-1", p, false));
        assert!(!is_valid_pattern("com..Foo-1", p, true));
        for bad in ["a..#", "a. .b", "a.\t", "#"] {
            assert!(!is_valid_pattern(bad, p, false), "{bad:?}");
            assert!(!is_valid_pattern(bad, p, true), "{bad:?}");
        }
    }
}
