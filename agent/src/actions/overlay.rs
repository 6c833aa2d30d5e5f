//! Drill overlays: for a bounded time, extra rules that watch one drill-owned file, so `auditloop drill`
//! can prove a rollback rule restores a file without ever touching the rule's real target.
//!
//! A root client of the control socket ([`crate::holdctl`]) asks to stage an overlay: a file and the
//! drill's copies of rules (YAML). The agent refuses unless the file is confined to a drill directory:
//! an absolute, lexically clean path `/<tmp root>/auditloop-drill-<nonce>/<name>` (tmp root one of
//! `/tmp`, `/var/tmp`, `/dev/shm`), reached without a symbolic link anywhere, the directory a real
//! directory owned by root with no group or other access, the file a regular file owned by root with one
//! link and at most [`MAX_FILE_BYTES`]. Each rule is renamed `drill:<name>`, may only alert and roll
//! back, and its condition is narrowed to `config_change` events of that file, so whatever the request
//! says, an overlay can only ever roll back the drill's own file. The file's content is recorded in the
//! content store (its known-good version) and it is watched until the overlay ends.
//!
//! An overlay ends when the drill removes it, when its time to live (at most [`MAX_TTL_SECS`]) passes, or
//! with the agent (it is kept in memory only). Staging and removal are journaled as `config_loaded`
//! records whose `reason` starts with `drill_overlay_staged` or `drill_overlay_removed`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use auditloop_model::{ConfigLoaded, EventBody};
use auditloop_rules::{Action, RuleSet, RuleState};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;
use sha2::{Digest, Sha256};

use crate::watch::{ContentStore, LinkOnPath, Lookup, StagedPaths, WatchedDir};

/// Directories a drill directory may be created in.
pub const OVERLAY_ROOTS: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];
/// Prefix of a drill directory's name.
pub const DRILL_DIR_PREFIX: &str = "auditloop-drill-";
/// Prefix the agent gives every overlay rule's name.
pub const RULE_PREFIX: &str = "drill:";
/// Name prefix of the macro each overlay rule's own condition is put in.
pub const CONDITION_MACRO: &str = "drill_overlay_condition_";
/// Longest time an overlay may stay.
pub const MAX_TTL_SECS: u64 = 600;
/// Most rules in one overlay.
pub const MAX_RULES: usize = 16;
/// Longest rules text of one overlay.
pub const MAX_RULES_BYTES: usize = 8 * 1024;
/// Largest staged file.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Most overlays staged at once.
pub const MAX_OVERLAYS: usize = 4;

/// A request to stage an overlay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayRequest {
    /// The drill-owned file the rules watch and roll back.
    pub file: PathBuf,
    /// The drill's copies of the rules (a rules file's YAML: rules, lists, macros).
    pub rules: String,
    /// Seconds until the agent removes the overlay by itself.
    pub ttl_secs: u64,
}

/// What staging an overlay gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayStaged {
    /// The overlay's id (for its removal).
    pub id: u64,
    /// The names of its rules, as alerts will name them (`drill:<name>`).
    pub rules: Vec<String>,
}

/// Why an overlay was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OverlayError {
    /// The file is not confined to a drill directory.
    #[error("refused: {path}: {why}")]
    NotConfined {
        /// The file asked for.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The rules are not acceptable.
    #[error("refused: overlay rules: {0}")]
    Rules(String),
    /// Too many overlays, or a bad time to live.
    #[error("refused: {0}")]
    Limit(String),
    /// The file's known-good content could not be recorded.
    #[error("recording the staged file's content: {0}")]
    Store(String),
    /// No overlay has that id.
    #[error("no drill overlay {0}")]
    Unknown(u64),
}

fn not_confined(path: &Path, why: impl Into<String>) -> OverlayError {
    OverlayError::NotConfined {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// Checks that `file` is a drill-owned file (see the module docs); returns it.
pub fn confine(file: &Path) -> Result<PathBuf, OverlayError> {
    let text = file
        .to_str()
        .ok_or_else(|| not_confined(file, "not UTF-8"))?;
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    {
        return Err(not_confined(
            file,
            "only letters, digits and `/._-` are allowed",
        ));
    }
    let clean = file
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && text
            .split('/')
            .skip(1)
            .all(|p| !p.is_empty() && p != "." && p != "..");
    if !text.starts_with('/') || !clean {
        return Err(not_confined(
            file,
            "not a plain absolute path (no `.`, `..` or empty components)",
        ));
    }
    let (Some(dir), Some(_name)) = (file.parent(), file.file_name()) else {
        return Err(not_confined(file, "no directory"));
    };
    let in_root = dir
        .parent()
        .is_some_and(|root| OVERLAY_ROOTS.iter().any(|r| root == Path::new(r)));
    let named = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() > DRILL_DIR_PREFIX.len() && n.starts_with(DRILL_DIR_PREFIX));
    if !in_root || !named {
        return Err(not_confined(
            file,
            format!(
                "not directly in a drill directory {}/{DRILL_DIR_PREFIX}<nonce>",
                OVERLAY_ROOTS.join("|")
            ),
        ));
    }
    let watched = match WatchedDir::lookup(file) {
        Ok(Lookup::Dir(dir)) => dir,
        Ok(Lookup::Gone) => return Err(not_confined(file, "its directory does not exist")),
        Ok(Lookup::Link(LinkOnPath { link, target })) => {
            return Err(not_confined(
                file,
                format!("{} is a symbolic link (to {target})", link.display()),
            ));
        }
        Err(err) => return Err(not_confined(file, err.to_string())),
    };
    let dir_meta = nix::sys::stat::fstat(watched.fd())
        .map_err(|e| not_confined(file, format!("{}: {e}", dir.display())))?;
    if dir_meta.st_uid != 0 || dir_meta.st_mode & 0o077 != 0 {
        return Err(not_confined(
            file,
            format!(
                "{} must be owned by root with mode 0700 (owner {}, mode {:o})",
                dir.display(),
                dir_meta.st_uid,
                dir_meta.st_mode & 0o7777
            ),
        ));
    }
    if let Ok(Some(link)) = watched.link() {
        return Err(not_confined(
            file,
            format!("the file is a symbolic link (to {})", link.target),
        ));
    }
    let opened = watched
        .open_file()
        .map_err(|e| not_confined(file, e.to_string()))?;
    let meta = opened
        .metadata()
        .map_err(|e| not_confined(file, e.to_string()))?;
    if !meta.is_file() || meta.uid() != 0 || meta.nlink() != 1 || meta.len() > MAX_FILE_BYTES {
        return Err(not_confined(
            file,
            format!(
                "must be a regular file owned by root, with one link and at most {MAX_FILE_BYTES} bytes \
                 (owner {}, links {}, {} bytes, mode {:o})",
                meta.uid(),
                meta.nlink(),
                meta.len(),
                meta.permissions().mode() & 0o7777
            ),
        ));
    }
    Ok(file.to_owned())
}

/// The overlay's rules from the request's YAML: renamed `drill:<name>`, only `alert` and `rollback`,
/// conditions narrowed to `config_change` events of `file` (confined, so it needs no quoting).
pub fn compile(text: &str, file: &Path) -> Result<RuleSet, OverlayError> {
    let bad = |why: String| OverlayError::Rules(why);
    if text.len() > MAX_RULES_BYTES {
        return Err(bad(format!("longer than {MAX_RULES_BYTES} bytes")));
    }
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string()))?;
    let items = doc
        .as_sequence()
        .ok_or_else(|| bad("not a list of rules, lists and macros".into()))?;
    let mut out = Vec::new();
    let mut rules = 0;
    for item in items {
        let Some(map) = item.as_mapping() else {
            return Err(bad("an item is not a mapping".into()));
        };
        if map.contains_key("list") || map.contains_key("macro") {
            out.push(item.clone());
            continue;
        }
        let Some(name) = map.get("rule").and_then(Value::as_str) else {
            return Err(bad("an item is neither a rule, a list nor a macro".into()));
        };
        const KEYS: [&str; 8] = [
            "rule",
            "desc",
            "condition",
            "output",
            "severity",
            "tags",
            "actions",
            "enabled",
        ];
        if let Some(key) = map
            .keys()
            .filter_map(Value::as_str)
            .find(|k| !KEYS.contains(k))
        {
            return Err(bad(format!(
                "rule {name}: key `{key}` is not allowed in an overlay"
            )));
        }
        let actions = map.get("actions").and_then(Value::as_sequence);
        for action in actions.into_iter().flatten() {
            let action = action.as_str().and_then(Action::parse);
            if !matches!(action, Some(Action::Alert | Action::Rollback)) {
                return Err(bad(format!(
                    "rule {name}: an overlay rule may only alert and roll back"
                )));
            }
        }
        let condition = map
            .get("condition")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("rule {name}: no condition")))?;
        // The request's condition becomes a macro of its own, parsed as a whole expression, so text
        // such as `a) or (b` cannot escape the narrowing below (it fails to parse instead).
        let own = format!("{CONDITION_MACRO}{rules}");
        let mut own_macro = serde_yaml_ng::Mapping::new();
        own_macro.insert("macro".into(), own.clone().into());
        own_macro.insert("condition".into(), condition.into());
        out.push(Value::Mapping(own_macro));
        let mut rule = map.clone();
        rule.insert("rule".into(), format!("{RULE_PREFIX}{name}").into());
        rule.insert(
            "condition".into(),
            format!(
                "{own} and evt.kind = config_change and change.path = {}",
                file.display()
            )
            .into(),
        );
        out.push(Value::Mapping(rule));
        rules += 1;
    }
    if rules == 0 || rules > MAX_RULES {
        return Err(bad(format!(
            "{rules} rules; an overlay has 1 to {MAX_RULES}"
        )));
    }
    let yaml = serde_yaml_ng::to_string(&Value::Sequence(out)).map_err(|e| bad(e.to_string()))?;
    RuleSet::parse("drill overlay", &yaml).map_err(|e| bad(e.to_string()))
}

/// One staged overlay.
pub struct Overlay {
    /// Its id.
    pub id: u64,
    /// The drill-owned file.
    pub file: PathBuf,
    /// Its rules.
    pub rules: RuleSet,
    /// Their threshold and sequence progress.
    pub state: RuleState,
    expires: Instant,
}

/// The staged overlays and the extra watched files they need.
#[derive(Default)]
pub struct Overlays {
    next_id: u64,
    staged: Vec<Overlay>,
    paths: StagedPaths,
}

impl Overlays {
    /// Overlays whose files are watched through `paths` (shared with capture).
    pub fn new(paths: StagedPaths) -> Overlays {
        Overlays {
            next_id: 1,
            staged: Vec::new(),
            paths,
        }
    }

    /// Validates and stages `request`: records the file's content as known-good in `store` and watches
    /// it. Returns what to tell the client and the record to journal.
    pub fn stage(
        &mut self,
        request: &OverlayRequest,
        store: Option<&mut ContentStore>,
        now: Instant,
    ) -> Result<(OverlayStaged, EventBody), OverlayError> {
        if request.ttl_secs == 0 || request.ttl_secs > MAX_TTL_SECS {
            return Err(OverlayError::Limit(format!(
                "ttl_secs {} is not 1 to {MAX_TTL_SECS}",
                request.ttl_secs
            )));
        }
        if self.staged.len() >= MAX_OVERLAYS {
            return Err(OverlayError::Limit(format!(
                "{MAX_OVERLAYS} drill overlays are staged already"
            )));
        }
        let file = confine(&request.file)?;
        if self.staged.iter().any(|o| o.file == file) {
            return Err(OverlayError::Limit(format!(
                "{} is staged already",
                file.display()
            )));
        }
        let rules = compile(&request.rules, &file)?;
        let store =
            store.ok_or_else(|| OverlayError::Store("the content store is not open".into()))?;
        store
            .observe(&file)
            .map_err(|e| OverlayError::Store(e.to_string()))?;
        let id = self.next_id.max(1);
        self.next_id = id + 1;
        let names: Vec<String> = rules.rules().iter().map(|r| r.name().to_owned()).collect();
        self.paths.add(&file);
        let body = EventBody::ConfigLoaded(ConfigLoaded {
            path: file.display().to_string(),
            sha256: Some(hex::encode(Sha256::digest(request.rules.as_bytes()))),
            reason: format!(
                "drill_overlay_staged (overlay {id}: rules {}; watching the file for at most {} s)",
                names.join(", "),
                request.ttl_secs
            ),
        });
        self.staged.push(Overlay {
            id,
            file,
            state: rules.new_state(),
            rules,
            expires: now + Duration::from_secs(request.ttl_secs),
        });
        Ok((OverlayStaged { id, rules: names }, body))
    }

    /// Removes overlay `id`; the record to journal.
    pub fn remove(&mut self, id: u64) -> Result<EventBody, OverlayError> {
        let at = self
            .staged
            .iter()
            .position(|o| o.id == id)
            .ok_or(OverlayError::Unknown(id))?;
        let overlay = self.staged.remove(at);
        Ok(self.removed(&overlay, "removed by the drill"))
    }

    /// Removes the overlays whose time is up; the records to journal.
    pub fn expire(&mut self, now: Instant) -> Vec<EventBody> {
        let (gone, kept): (Vec<Overlay>, Vec<Overlay>) = std::mem::take(&mut self.staged)
            .into_iter()
            .partition(|o| o.expires <= now);
        self.staged = kept;
        gone.iter()
            .map(|o| self.removed(o, "its time to live passed"))
            .collect()
    }

    fn removed(&self, overlay: &Overlay, why: &str) -> EventBody {
        self.paths.remove(&overlay.file);
        EventBody::ConfigLoaded(ConfigLoaded {
            path: overlay.file.display().to_string(),
            sha256: None,
            reason: format!("drill_overlay_removed (overlay {}: {why})", overlay.id),
        })
    }

    /// The staged overlays.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Overlay> {
        self.staged.iter_mut()
    }

    /// Whether none is staged.
    pub fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }
}
