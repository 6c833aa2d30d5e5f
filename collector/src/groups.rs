//! Host groups: named sets of host-name glob patterns (`groups:` of the configuration file), and the
//! choice of hosts a fleet-wide learn or rules diff reads: a group, an ad-hoc pattern, or a pattern within
//! a group.
//!
//! A pattern is a glob over the whole host name (`*`, `?`, `[a-z]`, `{a,b}`; case-sensitive). Patterns and
//! group names are checked where they are read (the configuration file, with its line and column; a
//! request, with a 400), so a typo never silently selects nothing or everything. A group never widens: an
//! ad-hoc pattern given with a group only narrows it. This module knows nothing of the store or HTTP.

use std::collections::BTreeMap;
use std::fmt;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Deserializer};

/// The longest group name.
const MAX_GROUP_NAME: usize = 64;
/// The longest pattern.
const MAX_PATTERN: usize = 256;

/// Why a group or a pattern cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// A group name that is empty, too long or not made of `A-Z a-z 0-9 . _ -`.
    #[error("invalid host group name {0:?} (1 to 64 of A-Z a-z 0-9 . _ -)")]
    BadName(String),
    /// A pattern that is not a glob.
    #[error("invalid host pattern {pattern:?}: {message}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
    /// A group with no pattern.
    #[error("host group {0:?} has no pattern")]
    Empty(String),
    /// A group the configuration does not define.
    #[error("unknown host group {name:?} ({})", known_groups(.known))]
    UnknownGroup {
        /// The name asked for.
        name: String,
        /// The groups there are.
        known: Vec<String>,
    },
    /// Neither a group nor a pattern was given.
    #[error("give a host group (group=) or a host-name pattern (hosts=)")]
    NoSelection,
}

fn known_groups(known: &[String]) -> String {
    if known.is_empty() {
        "no host groups are configured: add `groups:` to the collector's configuration file".into()
    } else {
        format!("configured: {}", known.join(", "))
    }
}

/// One host-name glob pattern, checked.
#[derive(Clone, Debug)]
pub struct HostPattern {
    text: String,
    matcher: GlobMatcher,
}

impl HostPattern {
    /// Checks and compiles `text`.
    pub fn new(text: &str) -> Result<HostPattern, GroupError> {
        let bad = |message: String| GroupError::BadPattern {
            pattern: text.to_owned(),
            message,
        };
        if text.is_empty() {
            return Err(bad("empty".into()));
        }
        if text.len() > MAX_PATTERN {
            return Err(bad(format!("longer than {MAX_PATTERN} bytes")));
        }
        if text.chars().any(|c| c.is_control() || c == '/') {
            return Err(bad(
                "host names hold no `/` and no control characters".into()
            ));
        }
        let glob = Glob::new(text).map_err(|e| bad(e.kind().to_string()))?;
        Ok(HostPattern {
            text: text.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `host` matches the whole pattern.
    pub fn matches(&self, host: &str) -> bool {
        self.matcher.is_match(host)
    }
}

impl PartialEq for HostPattern {
    fn eq(&self, other: &HostPattern) -> bool {
        self.text == other.text
    }
}

impl Eq for HostPattern {}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<HostPattern, D::Error> {
        let text = String::deserialize(deserializer)?;
        HostPattern::new(&text).map_err(serde::de::Error::custom)
    }
}

/// A checked host group name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupName(String);

impl GroupName {
    /// Checks `name`.
    pub fn new(name: &str) -> Result<GroupName, GroupError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_GROUP_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(GroupName(name.to_owned()))
        } else {
            Err(GroupError::BadName(name.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for GroupName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<GroupName, D::Error> {
        let text = String::deserialize(deserializer)?;
        GroupName::new(&text).map_err(serde::de::Error::custom)
    }
}

/// A group's patterns: at least one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patterns(Vec<HostPattern>);

impl Patterns {
    /// The patterns, in the order written.
    pub fn iter(&self) -> impl Iterator<Item = &HostPattern> {
        self.0.iter()
    }

    /// Whether `host` matches any of them.
    pub fn matches(&self, host: &str) -> bool {
        self.0.iter().any(|p| p.matches(host))
    }
}

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Patterns, D::Error> {
        let patterns = Vec::<HostPattern>::deserialize(deserializer)?;
        if patterns.is_empty() {
            return Err(serde::de::Error::custom(
                "a host group needs at least one host-name pattern",
            ));
        }
        Ok(Patterns(patterns))
    }
}

/// The configured host groups, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct HostGroups(BTreeMap<GroupName, Patterns>);

impl HostGroups {
    /// Groups from `(name, patterns)` pairs, checked (for tests and callers that build them in code).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a [&'a str])>,
    ) -> Result<HostGroups, GroupError> {
        let mut groups = BTreeMap::new();
        for (name, patterns) in pairs {
            let name = GroupName::new(name)?;
            let patterns: Vec<HostPattern> = patterns
                .iter()
                .map(|p| HostPattern::new(p))
                .collect::<Result<_, _>>()?;
            if patterns.is_empty() {
                return Err(GroupError::Empty(name.0));
            }
            groups.insert(name, Patterns(patterns));
        }
        Ok(HostGroups(groups))
    }

    /// Whether no group is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The group names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.0.keys().map(|n| n.0.clone()).collect()
    }

    /// The groups and their patterns, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Patterns)> {
        self.0.iter().map(|(n, p)| (n.as_str(), p))
    }

    /// The patterns of group `name`.
    pub fn get(&self, name: &str) -> Result<&Patterns, GroupError> {
        self.0
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, p)| p)
            .ok_or_else(|| GroupError::UnknownGroup {
                name: name.to_owned(),
                known: self.names(),
            })
    }

    /// The hosts a request chose: the group's (if `group`), matching `pattern` (if given), at least one
    /// of the two given.
    pub fn selection(
        &self,
        group: Option<&str>,
        pattern: Option<&str>,
    ) -> Result<Selection, GroupError> {
        let group = group
            .map(|name| self.get(name).map(|p| (name.to_owned(), p.clone())))
            .transpose()?;
        let pattern = pattern.map(HostPattern::new).transpose()?;
        if group.is_none() && pattern.is_none() {
            return Err(GroupError::NoSelection);
        }
        Ok(Selection { group, pattern })
    }
}

/// The hosts one request reads: a group's, narrowed by a pattern, or a pattern's alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    group: Option<(String, Patterns)>,
    pattern: Option<HostPattern>,
}

impl Selection {
    /// Whether `host` is chosen: in the group (when one is named) and matching the pattern (when one is
    /// given).
    pub fn matches(&self, host: &str) -> bool {
        self.group.as_ref().is_none_or(|(_, p)| p.matches(host))
            && self.pattern.as_ref().is_none_or(|p| p.matches(host))
    }

    /// The chosen hosts of `names`, in their order.
    pub fn choose<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        names
            .into_iter()
            .filter(|n| self.matches(n))
            .map(str::to_owned)
            .collect()
    }

    /// What was chosen, in words (`group web`, `hosts=db-*`, `group web, hosts=web-1*`).
    pub fn describe(&self) -> String {
        match (&self.group, &self.pattern) {
            (Some((g, _)), Some(p)) => format!("group {g}, hosts={p}"),
            (Some((g, _)), None) => format!("group {g}"),
            (None, Some(p)) => format!("hosts={p}"),
            (None, None) => "no hosts".into(),
        }
    }
}

#[cfg(test)]
mod tests;
