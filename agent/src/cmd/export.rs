//! `auditloop export`: journal records as JSON lines or ECS documents, filtered by time and kind.

use std::io::Write;

use auditloop_journal::{Payload, reader::Reader};
use auditloop_model::Event;

use crate::cli::{ExportArgs, ExportFormat};
use crate::export::ecs::to_ecs;

/// Streams the matching records to stdout.
pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for record in Reader::open(&args.dir)? {
        let record = record?;
        match record.payload {
            Payload::Event(event) => {
                if !selected(args, &event) {
                    continue;
                }
                match args.format {
                    ExportFormat::Jsonl => serde_json::to_writer(&mut out, &event)?,
                    ExportFormat::Ecs => serde_json::to_writer(&mut out, &to_ecs(&event, &host))?,
                }
            }
            other if args.all_records && args.format == ExportFormat::Jsonl => {
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!({ "seq": record.seq, "record": other }),
                )?;
            }
            _ => continue,
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn selected(args: &ExportArgs, event: &Event) -> bool {
    args.since.is_none_or(|t| event.time >= t)
        && args.until.is_none_or(|t| event.time < t)
        && (args.kind.is_empty() || args.kind.contains(&event.kind()))
}
