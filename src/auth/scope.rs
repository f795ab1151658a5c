//! SMART on FHIR v2 system scopes (`system/<Type|*>.<cruds>`), and the v1 forms
//! `system/<Type|*>.read|write|*` mapped onto them: parsing, the check "does this set
//! allow this letter on this type", and the grant (what was requested and may be had).
//! Pure domain: no HTTP, no database.

use std::fmt;

/// The permission letters of a v2 scope, in the order the specification writes them.
pub const LETTERS: [char; 5] = ['c', 'r', 'u', 'd', 's'];

/// A subset of `cruds` as bits, `c` the lowest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perms(u8);

impl Perms {
    pub const ALL: Self = Self(0b1_1111);

    fn bit(letter: char) -> Option<u8> {
        LETTERS.iter().position(|l| *l == letter).map(|i| 1 << i)
    }

    /// `rs`, `cud`, `cruds`: letters in specification order, each at most once.
    fn parse(text: &str) -> Option<Self> {
        let mut bits = 0u8;
        let mut last = None;
        for letter in text.chars() {
            let index = LETTERS.iter().position(|l| *l == letter)?;
            if last.is_some_and(|l| index <= l) {
                return None;
            }
            last = Some(index);
            bits |= 1 << index;
        }
        (bits != 0).then_some(Self(bits))
    }

    pub fn has(self, letter: char) -> bool {
        Self::bit(letter).is_some_and(|b| self.0 & b != 0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    #[must_use]
    pub fn and(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    #[must_use]
    pub fn or(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for letter in LETTERS {
            if self.has(letter) {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// One system scope: a resource type (or every type) and its permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `None` for `*`.
    pub resource_type: Option<String>,
    pub perms: Perms,
}

/// Why a scope string is not a system scope this server understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{scope}` is not a SMART system scope (system/<Type|*>.<cruds>, or v1 .read|.write|.*)")]
pub struct ScopeError {
    pub scope: String,
}

impl Scope {
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        let err = || ScopeError {
            scope: text.chars().take(80).collect(),
        };
        let rest = text.strip_prefix("system/").ok_or_else(err)?;
        let (ty, perms) = rest.split_once('.').ok_or_else(err)?;
        let type_ok = ty == "*"
            || (ty.len() <= 64
                && ty.starts_with(|c: char| c.is_ascii_uppercase())
                && ty.chars().all(|c| c.is_ascii_alphanumeric()));
        if !type_ok {
            return Err(err());
        }
        let perms = match perms {
            // SMART v1 forms (app-launch 1.0), mapped as the v2 specification does.
            "read" => Perms::parse("rs"),
            "write" => Perms::parse("cud"),
            "*" => Some(Perms::ALL),
            v2 => Perms::parse(v2),
        }
        .ok_or_else(err)?;
        Ok(Self {
            resource_type: (ty != "*").then(|| ty.to_owned()),
            perms,
        })
    }

    fn covers(&self, resource_type: &str) -> bool {
        self.resource_type
            .as_deref()
            .is_none_or(|t| t == resource_type)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ty = self.resource_type.as_deref().unwrap_or("*");
        write!(f, "system/{ty}.{}", self.perms)
    }
}

/// A set of system scopes, as granted to a client or written in a token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    /// Space-separated scopes; every one must parse.
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        let mut set = Self::default();
        for word in text.split_whitespace() {
            set.add(Scope::parse(word)?);
        }
        Ok(set)
    }

    /// Scopes already parsed and known good (as stored with a token); a word that
    /// does not parse grants nothing.
    pub fn lenient<S: AsRef<str>>(words: &[S]) -> Self {
        let mut set = Self::default();
        for scope in words.iter().filter_map(|w| Scope::parse(w.as_ref()).ok()) {
            set.add(scope);
        }
        set
    }

    /// Adds a scope, merging it with one of the same type.
    fn add(&mut self, scope: Scope) {
        if scope.perms.is_empty() {
            return;
        }
        match self
            .0
            .iter_mut()
            .find(|s| s.resource_type == scope.resource_type)
        {
            Some(existing) => existing.perms = existing.perms.or(scope.perms),
            None => self.0.push(scope),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn scopes(&self) -> &[Scope] {
        &self.0
    }

    /// Whether some scope grants `letter` (one of `cruds`) on `resource_type`.
    pub fn allows(&self, resource_type: &str, letter: char) -> bool {
        self.0
            .iter()
            .any(|s| s.covers(resource_type) && s.perms.has(letter))
    }

    /// What may be granted of `requested` under `self` (the client's allowed scopes):
    /// per requested scope the letters that an allowed scope of its type (or of `*`)
    /// also has. A requested `*` is narrowed to the allowed types.
    #[must_use]
    pub fn grant(&self, requested: &Self) -> Self {
        let mut granted = Self::default();
        for want in &requested.0 {
            for have in &self.0 {
                let resource_type = match (&want.resource_type, &have.resource_type) {
                    (Some(w), Some(h)) if w != h => continue,
                    (Some(t), _) | (None, Some(t)) => Some(t.clone()),
                    (None, None) => None,
                };
                granted.add(Scope {
                    resource_type,
                    perms: want.perms.and(have.perms),
                });
            }
        }
        granted
    }

    /// The scopes as words (`system/Patient.rs`).
    pub fn words(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> ScopeSet {
        ScopeSet::parse(text).unwrap()
    }

    #[test]
    fn v2_scopes_parse_in_specification_order_only() {
        let s = Scope::parse("system/Patient.rs").unwrap();
        assert_eq!(s.resource_type.as_deref(), Some("Patient"));
        assert!(s.perms.has('r') && s.perms.has('s') && !s.perms.has('c'));
        assert_eq!(s.to_string(), "system/Patient.rs");
        assert_eq!(
            Scope::parse("system/*.cruds").unwrap().to_string(),
            "system/*.cruds"
        );
        for bad in [
            "system/Patient.sr",
            "system/Patient.rr",
            "system/Patient.",
            "system/Patient.x",
            "patient/Patient.rs",
            "user/*.read",
            "system/patient.rs",
            "system/Patient",
            "system/Pat-ient.rs",
            "system/Observation.rs?category=laboratory",
            "launch",
            "",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn v1_scopes_map_to_v2() {
        assert_eq!(
            Scope::parse("system/Task.read").unwrap().to_string(),
            "system/Task.rs"
        );
        assert_eq!(
            Scope::parse("system/Task.write").unwrap().to_string(),
            "system/Task.cud"
        );
        assert_eq!(
            Scope::parse("system/*.*").unwrap().to_string(),
            "system/*.cruds"
        );
    }

    #[test]
    fn allows_by_type_and_letter() {
        let s = set("system/Task.rus system/Observation.crus system/*.s");
        assert!(s.allows("Task", 'r'));
        assert!(s.allows("Task", 'u'));
        assert!(!s.allows("Task", 'c'));
        assert!(!s.allows("Task", 'd'));
        assert!(s.allows("Observation", 'c'));
        assert!(!s.allows("Patient", 'r'));
        assert!(s.allows("Patient", 's'), "system/*.s covers every type");
        assert!(!ScopeSet::default().allows("Task", 'r'));
        assert!(set("system/*.cruds").allows("Anything", 'd'));
    }

    #[test]
    fn same_type_scopes_merge() {
        assert_eq!(
            set("system/Task.r system/Task.s system/Task.u").to_string(),
            "system/Task.rus"
        );
    }

    #[test]
    fn grant_is_the_intersection() {
        let allowed = set("system/Task.rus system/Patient.rs system/Subscription.cruds");
        let granted = allowed.grant(&set("system/Task.cruds system/Patient.r"));
        assert_eq!(granted.to_string(), "system/Task.rus system/Patient.r");

        let granted = allowed.grant(&set("system/*.rs"));
        assert_eq!(
            granted.to_string(),
            "system/Task.rs system/Patient.rs system/Subscription.rs"
        );

        let granted = set("system/*.cruds").grant(&set("system/Task.read"));
        assert_eq!(granted.to_string(), "system/Task.rs");

        assert!(allowed.grant(&set("system/Practitioner.r")).is_empty());
        assert!(allowed.grant(&set("system/Task.cd")).is_empty());
    }

    #[test]
    fn lenient_skips_unknown_words() {
        let s = ScopeSet::lenient(&["system/Task.rs", "openid", "system/Patient.r"]);
        assert_eq!(s.to_string(), "system/Task.rs system/Patient.r");
    }
}
