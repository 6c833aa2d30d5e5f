//! One item of a rules file (or a mapping nested in one) being read: typed access to its keys, and errors
//! that point at the key or value they concern.

use serde_yaml_ng::{Mapping, Value};

use crate::error::{ErrorKind, RuleError, near_matches};
use crate::source::{ItemPos, Scalar, SourceFile, scalar_at};

/// One item (or a mapping nested in one) being read, with its source positions.
pub(crate) struct Item<'a> {
    pub(crate) file: &'a SourceFile,
    pub(crate) fidx: usize,
    pub(crate) pos: &'a ItemPos,
    pub(crate) map: &'a Mapping,
    pub(crate) errors: &'a mut Vec<RuleError>,
}

impl Item<'_> {
    pub(crate) fn key_off(&self, key: &str) -> usize {
        self.pos.key(key).map_or(self.pos.start, |k| k.key)
    }

    pub(crate) fn value_off(&self, key: &str) -> usize {
        self.pos.key(key).map_or(self.pos.start, |k| k.value)
    }

    pub(crate) fn fail(&mut self, off: usize, width: usize, message: String) {
        self.errors
            .push(self.file.error(ErrorKind::Schema, off, width, message));
    }

    /// Reports keys outside `allowed`.
    pub(crate) fn keys(&mut self, allowed: &[&str]) {
        for k in self.map.keys() {
            let name = k.as_str().unwrap_or("?");
            if !allowed.contains(&name) {
                let mut e = self.file.error(
                    ErrorKind::Schema,
                    self.key_off(name),
                    name.chars().count(),
                    format!("unknown key `{name}`"),
                );
                e.hint = near_matches(name, allowed.iter().copied())
                    .or_else(|| Some(format!("allowed keys: {}", allowed.join(", "))));
                self.errors.push(e);
            }
        }
    }

    pub(crate) fn get(&mut self, key: &str, required: bool) -> Option<&Value> {
        let v = self.map.get(key);
        if v.is_none() && required {
            self.fail(self.pos.start, 1, format!("missing key `{key}`"));
        }
        v
    }

    pub(crate) fn string(&mut self, key: &str, required: bool) -> Option<String> {
        match self.get(key, required)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.fail(self.value_off(key), 1, format!("`{key}` must be a string"));
                None
            }
        }
    }

    pub(crate) fn scalar(&mut self, key: &str) -> Option<Scalar> {
        let text = self.string(key, true)?;
        Some(match self.pos.key(key) {
            Some(k) => scalar_at(&self.file.text, k, &text),
            None => Scalar::at(text, self.pos.start),
        })
    }

    pub(crate) fn strings(&mut self, key: &str, required: bool) -> Option<Vec<String>> {
        let off = self.value_off(key);
        let Value::Sequence(seq) = self.get(key, required)? else {
            self.fail(off, 1, format!("`{key}` must be a list"));
            return None;
        };
        let items: Option<Vec<String>> = seq
            .iter()
            .map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
            .collect();
        if items.is_none() {
            self.fail(off, 1, format!("`{key}` items must be strings or numbers"));
        }
        items
    }

    pub(crate) fn set_hint(&mut self, hint: Option<String>) {
        if let Some(e) = self.errors.last_mut() {
            e.hint = hint;
        }
    }
}
