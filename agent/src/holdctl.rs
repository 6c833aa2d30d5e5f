//! The local control channel of holds: `auditloop holds list|approve|deny` talks to the running agent
//! over a unix socket in its state directory (`holds.sock`, mode 0600, in the root-only state directory).
//! Each connection carries one JSON request line and gets one JSON reply line. The agent accepts a request
//! only from a peer whose uid (`SO_PEERCRED`) is 0, and names that uid as the decider (`local:uid0`).
//!
//! The socket task never decides anything itself: it forwards each request as a [`HoldCommand`] to the
//! journal task, which owns the holds, applies the decision and journals it. The same socket stages and
//! removes drill overlays for `auditloop drill` ([`crate::actions::overlay`]), also root only.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use auditloop_model::{Hold, HoldDecision};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::actions::hold::HoldInfo;
use crate::actions::overlay::{OverlayRequest, OverlayStaged};

/// The socket's file name in the state directory.
pub const SOCKET_NAME: &str = "holds.sock";

/// Longest request line.
const MAX_LINE: usize = 16 * 1024;

/// How long a client may take to send its request, and the agent to answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket of the agent whose state directory is `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// A request on the socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlRequest {
    /// The waiting holds.
    List,
    /// Decide one hold.
    Decide {
        /// The hold's id.
        id: u64,
        /// Approve or deny.
        decision: HoldDecision,
        /// Why.
        #[serde(default)]
        comment: String,
    },
    /// Stage a drill overlay (`auditloop drill`).
    DrillStage(OverlayRequest),
    /// Remove a drill overlay.
    DrillRemove {
        /// The overlay's id.
        id: u64,
    },
}

/// The agent's reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlReply {
    /// The waiting holds, oldest first.
    Holds(Vec<HoldInfo>),
    /// The decision was applied: the journaled outcome.
    Decided(Box<Hold>),
    /// The drill overlay is staged.
    DrillStaged(OverlayStaged),
    /// The drill overlay is removed.
    DrillRemoved,
    /// The request was refused or failed.
    Error(String),
}

/// What the socket task asks the journal task (which owns the holds).
#[derive(Debug)]
pub enum HoldCommand {
    /// List the waiting holds.
    List {
        /// Where the list goes.
        reply: oneshot::Sender<Vec<HoldInfo>>,
    },
    /// Apply a decision (from the socket or from the collector).
    Decide {
        /// The hold's id.
        id: u64,
        /// Approve or deny.
        decision: HoldDecision,
        /// Who decided (`local:uid0`, `collector:<who>`).
        by: String,
        /// Why.
        comment: String,
        /// Where the outcome goes (none for the collector's verdicts).
        reply: Option<oneshot::Sender<Result<Hold, String>>>,
    },
    /// Stage a drill overlay.
    StageOverlay {
        /// What to stage.
        request: OverlayRequest,
        /// The outcome.
        reply: oneshot::Sender<Result<OverlayStaged, String>>,
    },
    /// Remove a drill overlay.
    RemoveOverlay {
        /// The overlay's id.
        id: u64,
        /// The outcome.
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// Why the control channel failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The socket could not be created.
    #[error("creating the holds socket {path}")]
    Bind {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No agent answers on the socket.
    #[error(
        "no running agent answers on {path} (is `auditloop run` running with this state directory?)"
    )]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The exchange failed.
    #[error("talking to the agent on {path}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The agent's answer does not parse.
    #[error("the agent's answer on {path} does not parse")]
    Reply {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Creates the socket in `state_dir` (replacing a stale one), readable and writable by root only.
pub fn bind(state_dir: &Path) -> Result<UnixListener, ControlError> {
    let path = socket_path(state_dir);
    let bind_err = |source| ControlError::Bind {
        path: path.clone(),
        source,
    };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(bind_err(err)),
    }
    let listener = UnixListener::bind(&path).map_err(bind_err)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    Ok(listener)
}

/// Serves the socket until `stop` turns true; each connection is handled in its own task.
pub async fn serve(
    listener: UnixListener,
    commands: mpsc::Sender<HoldCommand>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let commands = commands.clone();
                    tokio::spawn(async move {
                        if let Err(err) = tokio::time::timeout(IO_TIMEOUT, connection(stream, commands)).await {
                            tracing::warn!("holds socket: a client took too long: {err}");
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!("holds socket: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.changed() => {
                if *stop.borrow() {
                    return;
                }
            }
        }
    }
}

/// One request and its reply.
async fn connection(stream: UnixStream, commands: mpsc::Sender<HoldCommand>) {
    let uid = stream.peer_cred().map(|c| c.uid());
    let (read, mut write) = stream.into_split();
    let reply = match uid {
        Ok(0) => {
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(read.take(MAX_LINE as u64));
            match reader.read_line(&mut line).await {
                Ok(_) => match serde_json::from_str::<ControlRequest>(line.trim()) {
                    Ok(request) => answer(request, 0, &commands).await,
                    Err(err) => ControlReply::Error(format!("bad request: {err}")),
                },
                Err(err) => ControlReply::Error(format!("reading the request: {err}")),
            }
        }
        Ok(uid) => {
            tracing::warn!(uid, "holds socket: refused a request from a non-root peer");
            ControlReply::Error(format!(
                "refused: only root (uid 0) may use the control socket, not uid {uid}"
            ))
        }
        Err(err) => ControlReply::Error(format!(
            "refused: the peer's credentials are unknown: {err}"
        )),
    };
    let mut text = serde_json::to_string(&reply).unwrap_or_else(|_| "{\"error\":\"\"}".into());
    text.push('\n');
    let _ = write.write_all(text.as_bytes()).await;
}

/// Forwards a request to the journal task and waits for its answer.
async fn answer(
    request: ControlRequest,
    uid: u32,
    commands: &mpsc::Sender<HoldCommand>,
) -> ControlReply {
    let gone = || ControlReply::Error("the agent is stopping".into());
    match request {
        ControlRequest::List => {
            let (tx, rx) = oneshot::channel();
            if commands
                .send(HoldCommand::List { reply: tx })
                .await
                .is_err()
            {
                return gone();
            }
            rx.await.map_or_else(|_| gone(), ControlReply::Holds)
        }
        ControlRequest::Decide {
            id,
            decision,
            comment,
        } => {
            let (tx, rx) = oneshot::channel();
            let command = HoldCommand::Decide {
                id,
                decision,
                by: format!("local:uid{uid}"),
                comment,
                reply: Some(tx),
            };
            if commands.send(command).await.is_err() {
                return gone();
            }
            match rx.await {
                Ok(Ok(hold)) => ControlReply::Decided(Box::new(hold)),
                Ok(Err(why)) => ControlReply::Error(why),
                Err(_) => gone(),
            }
        }
        ControlRequest::DrillStage(request) => {
            let (tx, rx) = oneshot::channel();
            let command = HoldCommand::StageOverlay { request, reply: tx };
            if commands.send(command).await.is_err() {
                return gone();
            }
            match rx.await {
                Ok(Ok(staged)) => ControlReply::DrillStaged(staged),
                Ok(Err(why)) => ControlReply::Error(why),
                Err(_) => gone(),
            }
        }
        ControlRequest::DrillRemove { id } => {
            let (tx, rx) = oneshot::channel();
            if commands
                .send(HoldCommand::RemoveOverlay { id, reply: tx })
                .await
                .is_err()
            {
                return gone();
            }
            match rx.await {
                Ok(Ok(())) => ControlReply::DrillRemoved,
                Ok(Err(why)) => ControlReply::Error(why),
                Err(_) => gone(),
            }
        }
    }
}

/// Sends `request` to the agent listening on `socket` and returns its reply (blocking; for the CLI).
pub fn call(socket: &Path, request: &ControlRequest) -> Result<ControlReply, ControlError> {
    let io = |source| ControlError::Io {
        path: socket.to_owned(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(socket).map_err(|source| {
        ControlError::Connect {
            path: socket.to_owned(),
            source,
        }
    })?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    let mut line = serde_json::to_string(request).map_err(|source| ControlError::Reply {
        path: socket.to_owned(),
        source,
    })?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).map_err(io)?;
    serde_json::from_str(reply.trim()).map_err(|source| ControlError::Reply {
        path: socket.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip_as_json_lines() {
        let request = ControlRequest::Decide {
            id: 42,
            decision: HoldDecision::Approve,
            comment: "known job".into(),
        };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(
            text,
            r#"{"decide":{"id":42,"decision":"approve","comment":"known job"}}"#
        );
        assert_eq!(
            serde_json::from_str::<ControlRequest>(&text).unwrap(),
            request
        );
        assert_eq!(
            serde_json::to_string(&ControlRequest::List).unwrap(),
            r#""list""#
        );
        let reply = ControlReply::Error("no".into());
        let back: ControlReply =
            serde_json::from_str(&serde_json::to_string(&reply).unwrap()).unwrap();
        assert_eq!(back, reply);
    }

    #[tokio::test]
    async fn root_peers_are_served_through_the_journal_task() {
        let dir = tempfile::tempdir().unwrap();
        let listener = bind(dir.path()).unwrap();
        let mode = std::fs::metadata(socket_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (tx, mut rx) = mpsc::channel(4);
        let (_stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(serve(listener, tx, stop_rx));
        tokio::spawn(async move {
            while let Some(command) = rx.recv().await {
                match command {
                    HoldCommand::List { reply } => {
                        let _ = reply.send(Vec::new());
                    }
                    HoldCommand::Decide { id, by, reply, .. } => {
                        let _ = reply.unwrap().send(Err(format!("no hold {id} ({by})")));
                    }
                    HoldCommand::StageOverlay { reply, .. } => {
                        let _ = reply.send(Err("not staged".into()));
                    }
                    HoldCommand::RemoveOverlay { reply, .. } => {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
        });
        let socket = socket_path(dir.path());
        let listed = tokio::task::spawn_blocking({
            let socket = socket.clone();
            move || call(&socket, &ControlRequest::List).unwrap()
        })
        .await
        .unwrap();
        assert_eq!(listed, ControlReply::Holds(Vec::new()));
        let decided = tokio::task::spawn_blocking(move || {
            call(
                &socket,
                &ControlRequest::Decide {
                    id: 3,
                    decision: HoldDecision::Deny,
                    comment: String::new(),
                },
            )
            .unwrap()
        })
        .await
        .unwrap();
        // The tests run as root: the decider is uid 0.
        assert_eq!(
            decided,
            ControlReply::Error("no hold 3 (local:uid0)".into())
        );
    }
}
