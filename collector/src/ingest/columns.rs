//! The searchable columns of a record ([`SearchColumns`]): what the query API filters on without decoding
//! payloads, derived here from each verified payload; the store only keeps them.
//!
//! Columns are only an index: the payload bytes stay the record of truth (they are what the hash covers and
//! what queries return). `path` is the file the event is about (exec filename, file path, changed config
//! file, …); `summary` is the text the `q` query parameter searches: comm, exe, paths, argv, addresses,
//! rule names.

use auditloop_journal::record::SegmentStart;
use auditloop_model::{Event, EventBody};

use crate::store::SearchColumns;

/// Longest summary kept, in bytes.
pub const SUMMARY_MAX: usize = 512;

/// Columns of an event.
pub fn of_event(event: &Event) -> SearchColumns {
    let p = &event.process;
    let mut summary = Summary::default();
    summary.push(&p.comm);
    summary.push(&p.exe);
    let path = path_of(&event.event);
    if let Some(path) = path {
        summary.push(path);
    }
    match &event.event {
        EventBody::Exec(e) => e.argv.iter().for_each(|a| summary.push(a)),
        EventBody::File(f) => summary.push(&f.target),
        EventBody::Net(n) => summary.push(&n.address),
        EventBody::MemfdCreate(m) => summary.push(&m.name),
        EventBody::SetName(s) => summary.push(&s.name),
        EventBody::Alert(a) => {
            summary.push(&a.rule);
            summary.push(&a.output);
        }
        EventBody::Action(a) => {
            summary.push(a.action.as_str());
            summary.push(&a.rule);
        }
        EventBody::Loss(l) => {
            summary.push(l.stage.as_str());
            summary.push(&l.record);
        }
        EventBody::Syscall(s) => summary.push(&s.name),
        EventBody::IoUring(u) => {
            summary.push(u.op.as_str());
            summary.push(&u.target);
            summary.push(&u.address);
        }
        EventBody::Fork(_)
        | EventBody::IoUringSetup(_)
        | EventBody::Exit(_)
        | EventBody::AgentStart(_)
        | EventBody::AgentStop(_)
        | EventBody::SetId(_)
        | EventBody::Ptrace(_)
        | EventBody::Kill(_)
        | EventBody::ConfigChange(_)
        | EventBody::ConfigLoaded(_)
        | EventBody::JournalRecovered(_)
        | EventBody::RulesLoaded(_)
        | EventBody::RulesRejected(_) => {}
    }
    SearchColumns {
        time_ns: Some(event.time.0),
        pid: Some(p.pid),
        path: path.filter(|p| !p.is_empty()).map(str::to_owned),
        summary: Some(summary.0),
    }
}

/// Columns of a segment start.
pub fn of_segment_start(start: &SegmentStart) -> SearchColumns {
    SearchColumns {
        time_ns: Some(start.created_ns),
        summary: Some(format!(
            "{} generation {} boot {}",
            start.host, start.generation, start.boot_id
        )),
        ..SearchColumns::default()
    }
}

/// The file an event is about.
fn path_of(body: &EventBody) -> Option<&str> {
    match body {
        EventBody::Exec(e) => Some(&e.filename),
        EventBody::File(f) => Some(&f.path),
        EventBody::ConfigChange(c) => Some(&c.path),
        EventBody::ConfigLoaded(c) => Some(&c.path),
        EventBody::RulesLoaded(r) => Some(&r.path),
        EventBody::RulesRejected(r) => Some(&r.path),
        EventBody::Action(a) => a.path.as_deref(),
        EventBody::IoUring(u) => Some(&u.path),
        EventBody::Fork(_)
        | EventBody::IoUringSetup(_)
        | EventBody::Exit(_)
        | EventBody::Loss(_)
        | EventBody::AgentStart(_)
        | EventBody::AgentStop(_)
        | EventBody::SetId(_)
        | EventBody::Ptrace(_)
        | EventBody::Kill(_)
        | EventBody::SetName(_)
        | EventBody::MemfdCreate(_)
        | EventBody::Net(_)
        | EventBody::Syscall(_)
        | EventBody::JournalRecovered(_)
        | EventBody::Alert(_) => None,
    }
}

/// Space-separated text, cut at [`SUMMARY_MAX`] bytes on a character boundary.
#[derive(Default)]
struct Summary(String);

impl Summary {
    fn push(&mut self, text: &str) {
        if text.is_empty() || self.0.len() >= SUMMARY_MAX {
            return;
        }
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        let room = SUMMARY_MAX.saturating_sub(self.0.len());
        let mut cut = text.len().min(room);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.0.push_str(&text[..cut]);
    }
}

#[cfg(test)]
mod tests {
    use auditloop_model::{Event, EventBody, Exec, File, Process, WallTime};

    use super::{SUMMARY_MAX, Summary, of_event};

    fn event(body: EventBody) -> Event {
        Event {
            seq: 1,
            time: WallTime(7),
            mono_ns: 0,
            process: Process {
                pid: 42,
                comm: "bash".into(),
                exe: "/usr/bin/bash".into(),
                ..Process::default()
            },
            event: body,
        }
    }

    #[test]
    fn exec_and_file_events_index_their_paths() {
        let exec = of_event(&event(EventBody::Exec(Exec {
            filename: "/bin/ls".into(),
            argv: vec!["ls".into(), "-l".into()],
            ..Exec::default()
        })));
        assert_eq!(exec.path.as_deref(), Some("/bin/ls"));
        assert_eq!(exec.pid, Some(42));
        assert_eq!(exec.time_ns, Some(7));
        assert_eq!(
            exec.summary.as_deref(),
            Some("bash /usr/bin/bash /bin/ls ls -l")
        );
        let file = of_event(&event(EventBody::File(File {
            path: "/etc/passwd".into(),
            ..File::default()
        })));
        assert_eq!(file.path.as_deref(), Some("/etc/passwd"));
    }

    #[test]
    fn summaries_are_cut_on_a_character_boundary() {
        let mut s = Summary::default();
        s.push(&"é".repeat(400));
        s.push("more");
        assert!(s.0.len() <= SUMMARY_MAX);
        assert!(s.0.chars().all(|c| c == 'é'));
    }
}
