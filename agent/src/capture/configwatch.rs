//! Connects capture to the watch stage: file touches on watched paths (close after write, rename, truncate,
//! unlink, chmod, chown, exit of a writer) are checked against the content store, and real changes become
//! `config_change` events attributed to the process that made them. A secret file's change arrives here
//! already redacted by the store; nothing here adds content or logs it.

use std::path::{Path, PathBuf};

use auditloop_model::{ChangeTrigger, ConfigChange, Event, EventBody, Process};

use super::{Assembler, FileTouch};
use crate::watch::{ContentStore, FileChange, Redaction, StagedPaths, WatchError, WatchList};

/// The watch list, the files drill overlays staged, and the content store.
pub struct ConfigWatch {
    list: WatchList,
    staged: StagedPaths,
    store: ContentStore,
}

impl ConfigWatch {
    /// Opens the store under `state_dir/content` and snapshots every watched file, redacting the files
    /// `redact` (`watch.redact`) names besides the built-in secrets. Changes made while the agent was not
    /// running are returned (empty on the very first start).
    pub fn open_with_redaction(
        paths: Vec<PathBuf>,
        redact: &[String],
        state_dir: &Path,
    ) -> Result<(ConfigWatch, Vec<FileChange>), WatchError> {
        let list = WatchList::new(paths);
        let redaction = Redaction::new(redact.iter().map(String::as_str))?;
        let mut store = ContentStore::open(&state_dir.join("content"))?.with_redaction(redaction);
        let report = store.snapshot_all(&list);
        for failure in &report.failures {
            tracing::warn!("config watch snapshot: {failure}");
        }
        let changes = if report.was_empty {
            Vec::new()
        } else {
            report.changes
        };
        Ok((
            ConfigWatch {
                list,
                staged: StagedPaths::default(),
                store,
            },
            changes,
        ))
    }

    /// Also watches the files in `staged` (drill overlays) for as long as they are in it.
    pub fn set_staged(&mut self, staged: StagedPaths) {
        self.staged = staged;
    }

    /// Checks each touch; appends a `config_change` event for every watched file whose content or metadata
    /// changed.
    pub fn check(
        &mut self,
        touches: Vec<FileTouch>,
        assembler: &mut Assembler,
        out: &mut Vec<Event>,
    ) {
        for touch in touches {
            let path = Path::new(&touch.path);
            if !self.list.is_watched(path) && !self.staged.contains(path) {
                continue;
            }
            match self.store.observe(path) {
                Ok(Some(change)) => {
                    out.push(assembler.event_for(touch.process, body(change, touch.trigger)))
                }
                Ok(None) => {}
                Err(err) => tracing::warn!("config watch: {err}"),
            }
        }
    }

    /// A `config_change` event for a change found at start (made while the agent was not running).
    pub fn startup_event(change: FileChange, assembler: &mut Assembler) -> Event {
        assembler.event_for(Process::default(), body(change, ChangeTrigger::Startup))
    }
}

fn body(change: FileChange, trigger: ChangeTrigger) -> EventBody {
    EventBody::ConfigChange(ConfigChange {
        path: change.path.to_string_lossy().into_owned(),
        trigger,
        old_sha256: change.old_sha256,
        new_sha256: change.new_sha256,
        size: change.size,
        mode: change.mode,
        uid: change.uid,
        gid: change.gid,
        old_mode: change.old_mode,
        old_uid: change.old_uid,
        old_gid: change.old_gid,
        diff: change.diff,
        diff_truncated: change.diff_truncated,
        redacted: change.redacted,
        changed_entries: change.changed_entries,
        link_target: change.link_target,
    })
}
