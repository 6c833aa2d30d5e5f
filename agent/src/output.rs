//! Printing events: one JSON object per line, or a compact human-readable line.

use std::io::Write;

use auditloop_model::{Event, EventBody};

/// How events are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line (the event model's serde form).
    Json,
    /// One aligned human-readable line per event.
    Pretty,
    /// Only what needs attention, as JSON lines: alerts, actions taken, losses, rejected rules files and
    /// tamper events (the service's choice: journald gets the findings, not every event).
    Alerts,
    /// Nothing: events are journaled and shipped only.
    None,
}

impl Format {
    /// Whether an event of this kind is printed at all (decided before any formatting work).
    pub fn prints(self, event: &Event) -> bool {
        match self {
            Format::Json | Format::Pretty => true,
            Format::Alerts => is_finding(&event.event),
            Format::None => false,
        }
    }
}

/// Whether the body is one the `alerts` output prints.
fn is_finding(body: &EventBody) -> bool {
    match body {
        EventBody::Alert(_)
        | EventBody::Action(_)
        | EventBody::Hold(_)
        | EventBody::Loss(_)
        | EventBody::Tamper(_)
        | EventBody::RulesRejected(_) => true,
        EventBody::Exec(_)
        | EventBody::Fork(_)
        | EventBody::Exit(_)
        | EventBody::File(_)
        | EventBody::Net(_)
        | EventBody::SetId(_)
        | EventBody::Ptrace(_)
        | EventBody::Kill(_)
        | EventBody::MemfdCreate(_)
        | EventBody::SetName(_)
        | EventBody::Syscall(_)
        | EventBody::IoUring(_)
        | EventBody::IoUringSetup(_)
        | EventBody::ConfigChange(_)
        | EventBody::ConfigLoaded(_)
        | EventBody::JournalRecovered(_)
        | EventBody::RulesLoaded(_)
        | EventBody::AgentStart(_)
        | EventBody::AgentStop(_) => false,
    }
}

/// Writes `event` as one line in `format` (nothing when the format does not print it).
pub fn write_event(out: &mut impl Write, format: Format, event: &Event) -> std::io::Result<()> {
    if !format.prints(event) {
        return Ok(());
    }
    match format {
        Format::Json | Format::Alerts => {
            serde_json::to_writer(&mut *out, event)?;
            out.write_all(b"\n")
        }
        Format::Pretty => writeln!(out, "{}", pretty(event)),
        Format::None => Ok(()),
    }
}

fn result(ret: Option<i64>) -> String {
    match ret {
        Some(r) if r >= 0 => format!("ok {r}"),
        Some(r) => format!("failed errno={}", -r),
        None => "result unknown".into(),
    }
}

/// The human-readable line for an event.
pub fn pretty(event: &Event) -> String {
    let p = &event.process;
    let head = format!(
        "{} {:<5} pid={} ppid={} uid={} comm={}",
        event.time,
        event.kind(),
        p.pid,
        p.ppid,
        p.uid,
        p.comm
    );
    let detail = match &event.event {
        EventBody::Exec(e) => {
            let result = match e.ret {
                Some(0) => "ok".to_string(),
                Some(r) => format!("failed errno={}", -r),
                None => "result unknown".to_string(),
            };
            let more = if e.argv_truncated { " …" } else { "" };
            format!("{} [{}]{} ({result})", e.filename, e.argv.join(" "), more)
        }
        EventBody::Fork(f) => format!("child={}", f.child_pid),
        EventBody::Exit(x) => match (x.code, x.signal) {
            (Some(c), _) => format!("code={c}"),
            (None, Some(s)) => format!("signal={s}"),
            (None, None) => "status unknown".into(),
        },
        EventBody::Loss(l) => format!(
            "LOST {} {} record(s) at {} (total {})",
            l.count, l.record, l.stage, l.total
        ),
        EventBody::AgentStart(a) => format!(
            "agent {} started: {} tracepoints, ring buffer {} bytes",
            a.version, a.tracepoints, a.ring_buffer_bytes
        ),
        EventBody::AgentStop(a) => format!(
            "agent stopped: {} records, {} events, {} lost in kernel, {} undecodable",
            a.records, a.events, a.kernel_lost, a.decode_errors
        ),
        EventBody::File(f) => format!(
            "{} {}{}{} ({})",
            f.op,
            f.path,
            if f.target.is_empty() { "" } else { " -> " },
            f.target,
            result(f.ret)
        ),
        EventBody::ConfigChange(c) => format!(
            "CONFIG CHANGED {} by {}: {} -> {}{}",
            c.path,
            c.trigger,
            c.old_sha256.as_deref().unwrap_or("(new)"),
            match (&c.new_sha256, &c.link_target) {
                (Some(sha256), _) => sha256.clone(),
                (None, Some(target)) => format!("(symbolic link to {target})"),
                (None, None) => "(gone)".into(),
            },
            if c.redacted { " (redacted)" } else { "" }
        ),
        EventBody::Net(n) => format!(
            "{} fd={} {} {}:{} ({})",
            n.op,
            n.fd,
            n.family,
            n.address,
            n.port,
            result(n.ret)
        ),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    format!("{head} {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditloop_model::{Exec, Process, WallTime};

    fn exec_event() -> Event {
        Event {
            seq: 1,
            time: WallTime(0),
            mono_ns: 0,
            process: Process {
                pid: 5,
                tid: 5,
                ppid: 1,
                uid: 0,
                gid: 0,
                comm: "true".into(),
                ..Process::default()
            },
            event: EventBody::Exec(Exec {
                filename: "/bin/true".into(),
                argv: vec!["true".into(), "m".into()],
                ret: Some(0),
                success: true,
                ..Exec::default()
            }),
        }
    }

    #[test]
    fn alerts_and_none_print_only_findings_or_nothing() {
        let exec = exec_event();
        let alert = Event {
            event: EventBody::Alert(auditloop_model::Alert::default()),
            ..exec_event()
        };
        for (format, exec_printed, alert_printed) in [
            (Format::Json, true, true),
            (Format::Pretty, true, true),
            (Format::Alerts, false, true),
            (Format::None, false, false),
        ] {
            let mut buf = Vec::new();
            write_event(&mut buf, format, &exec).unwrap();
            assert_eq!(!buf.is_empty(), exec_printed, "{format:?} exec");
            buf.clear();
            write_event(&mut buf, format, &alert).unwrap();
            assert_eq!(!buf.is_empty(), alert_printed, "{format:?} alert");
        }
    }

    #[test]
    fn json_is_one_line() {
        let mut buf = Vec::new();
        write_event(&mut buf, Format::Json, &exec_event()).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event"]["exec"]["argv"][1], "m");
    }

    #[test]
    fn pretty_line() {
        assert_eq!(
            pretty(&exec_event()),
            "1970-01-01T00:00:00.000000000Z exec  pid=5 ppid=1 uid=0 comm=true /bin/true [true m] (ok)"
        );
    }
}
