//! Scopes: what a token allows, as `"<action>:<glob>"` strings. Actions
//! are `produce` and `consume` (topic names), `commit` (group names) and
//! `admin` (topic names; `admin:*` also revokes tokens). A glob's `*`
//! matches any run of characters, and nothing else is special.

use std::fmt;

/// What a caller wants to do to a named resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Produce,
    Consume,
    Commit,
    Admin,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Produce,
        Action::Consume,
        Action::Commit,
        Action::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Produce => "produce",
            Action::Consume => "consume",
            Action::Commit => "commit",
            Action::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// What the action names: topics, except `commit` (groups).
    pub fn resource_kind(self) -> &'static str {
        match self {
            Action::Commit => "group",
            _ => "topic",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One granted scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub action: Action,
    pub glob: String,
}

impl Scope {
    /// Parses `"<action>:<glob>"`; the error names what is wrong.
    pub fn parse(s: &str) -> Result<Scope, String> {
        let (action, glob) = s
            .split_once(':')
            .ok_or_else(|| format!("scope {s:?} is not \"<action>:<glob>\""))?;
        let action = Action::parse(action).ok_or_else(|| {
            format!("scope {s:?} names no known action (produce, consume, commit, admin)")
        })?;
        if glob.is_empty() {
            return Err(format!("scope {s:?} has an empty name pattern"));
        }
        Ok(Scope {
            action,
            glob: glob.to_string(),
        })
    }

    /// Whether this scope allows `action` on `name`.
    pub fn allows(&self, action: Action, name: &str) -> bool {
        self.action == action && glob_matches(&self.glob, name)
    }
}

/// Every scope of one token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Parses a token's `scopes` claim; one malformed scope refuses them all.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Scopes, String> {
        list.iter()
            .map(|s| Scope::parse(s.as_ref()))
            .collect::<Result<_, _>>()
            .map(Scopes)
    }

    pub fn allows(&self, action: Action, name: &str) -> bool {
        self.0.iter().any(|s| s.allows(action, name))
    }

    /// Whether any action is allowed on `name` (so it may be listed and described).
    pub fn allows_any(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|s| s.action != Action::Commit && glob_matches(&s.glob, name))
    }

    /// `admin:*`: revokes tokens, and everything an admin may do to topics.
    pub fn is_tenant_admin(&self) -> bool {
        self.0
            .iter()
            .any(|s| s.action == Action::Admin && s.glob.bytes().all(|b| b == b'*'))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }
}

/// Whether `name` matches `glob`, where `*` matches any run of characters
/// (including none). Linear in the lengths: the classic greedy match with
/// one backtrack point.
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let (g, n) = (glob.as_bytes(), name.as_bytes());
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && g[gi] == b'*' {
            star = Some((gi, ni));
            gi += 1;
        } else if gi < g.len() && g[gi] == n[ni] {
            gi += 1;
            ni += 1;
        } else if let Some((sg, sn)) = star {
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_runs_of_any_characters() {
        for (g, n, want) in [
            ("*", "", true),
            ("*", "orders", true),
            ("orders", "orders", true),
            ("orders", "orders2", false),
            ("orders.*", "orders.eu", true),
            ("orders.*", "orders", false),
            ("orders.*", "ordersxeu", false),
            ("*.eu", "orders.eu", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("a**", "a", true),
            ("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
        ] {
            assert_eq!(glob_matches(g, n), want, "{g} ~ {n}");
        }
    }

    #[test]
    fn scopes_parse_and_allow_by_action_and_name() {
        let s = Scopes::parse(&["produce:orders.*", "consume:*", "commit:billing"]).unwrap();
        assert!(s.allows(Action::Produce, "orders.eu"));
        assert!(!s.allows(Action::Produce, "payments"));
        assert!(s.allows(Action::Consume, "payments"));
        assert!(s.allows(Action::Commit, "billing"));
        assert!(!s.allows(Action::Commit, "other"));
        assert!(!s.allows(Action::Admin, "orders.eu"));
        assert!(!s.is_tenant_admin());
        assert!(Scopes::parse(&["admin:*"]).unwrap().is_tenant_admin());
        assert!(!Scopes::parse(&["admin:o*"]).unwrap().is_tenant_admin());
        for bad in ["produce", "write:x", "consume:", ""] {
            assert!(Scopes::parse(&[bad]).is_err(), "{bad:?}");
        }
    }
}
