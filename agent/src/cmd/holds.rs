//! `auditloop holds list|approve|deny`: the running agent's holds, over its local control socket.

use std::process::ExitCode;

use anyhow::bail;

use auditloop_model::HoldDecision;

use crate::actions::hold::HoldInfo;
use crate::cli::{HoldsArgs, HoldsCommand};
use crate::config::Config;
use crate::holdctl::{self, ControlReply, ControlRequest};

/// Runs the command: exit 0 when the agent did what was asked, 1 when it refused (unknown id, decided
/// already) or could not be reached.
pub fn run(args: &HoldsArgs) -> anyhow::Result<ExitCode> {
    let state_dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => Config::load(&args.config)?.state_dir,
    };
    let socket = holdctl::socket_path(&state_dir);
    let (request, json) = match &args.command {
        HoldsCommand::List { json } => (ControlRequest::List, *json),
        HoldsCommand::Approve { id, comment } => {
            (decide(*id, HoldDecision::Approve, comment), false)
        }
        HoldsCommand::Deny { id, comment } => (decide(*id, HoldDecision::Deny, comment), false),
    };
    match holdctl::call(&socket, &request)? {
        ControlReply::Holds(holds) if json => println!("{}", serde_json::to_string_pretty(&holds)?),
        ControlReply::Holds(holds) => print!("{}", table(&holds)),
        ControlReply::Decided(hold) => println!(
            "hold {}: {} by {} after {} ms ({}); pid {} {}",
            hold.id,
            hold.state,
            hold.decided_by,
            hold.latency_us / 1000,
            hold.detail,
            hold.target_pid,
            hold.exe
        ),
        ControlReply::Error(why) => bail!("the agent refused: {why}"),
        ControlReply::DrillStaged(_) | ControlReply::DrillRemoved => {
            bail!("the agent answered with a drill overlay reply to a holds request")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn decide(id: u64, decision: HoldDecision, comment: &str) -> ControlRequest {
    ControlRequest::Decide {
        id,
        decision,
        comment: comment.to_owned(),
    }
}

/// The human-readable list.
pub fn table(holds: &[HoldInfo]) -> String {
    if holds.is_empty() {
        return "no holds waiting\n".into();
    }
    let mut out = String::new();
    for h in holds {
        out.push_str(&format!(
            "{id}  rule={rule}  pid={pid} ({state})  {comm} {exe}  age={age}s  left={left}s then {default}  \
             stopped by {by}\n",
            id = h.id,
            rule = h.rule,
            pid = h.pid,
            state = h.state,
            comm = h.comm,
            exe = h.exe,
            age = h.age_ms / 1000,
            left = h.remaining_ms / 1000,
            default = h.default,
            by = h.stopped_by,
        ));
        for parent in &h.parents {
            out.push_str(&format!("    <- {parent}\n"));
        }
    }
    out
}
