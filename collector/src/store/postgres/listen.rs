//! Following the notifications writes send (`order::CHANNEL`) on a connection of its own, so that every
//! replica's live feeds wake when any replica commits a fleet alert, a state change, a hold or a verdict.
//!
//! The connection is opened again after it fails (the server restarted); each (re)connection counts as a
//! change, since notifications sent meanwhile were lost and a feed must look again.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

use crate::store::postgres::order::CHANNEL;

/// How long to wait before connecting again.
const RETRY: Duration = Duration::from_secs(1);

/// Listens until the runtime stops, counting changes in `changes`.
pub(super) async fn run(config: tokio_postgres::Config, changes: watch::Sender<u64>) {
    loop {
        if let Err(e) = listen_once(&config, &changes).await {
            tracing::debug!(error = %e, "notification connection ended; reconnecting");
        }
        changes.send_modify(|n| *n = n.wrapping_add(1));
        tokio::time::sleep(RETRY).await;
    }
}

/// One connection: returns when it ends.
async fn listen_once(
    config: &tokio_postgres::Config,
    changes: &watch::Sender<u64>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if tx.send(()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // Anything written before the LISTEN took effect was not notified here.
    changes.send_modify(|n| *n = n.wrapping_add(1));
    while rx.recv().await.is_some() {
        changes.send_modify(|n| *n = n.wrapping_add(1));
    }
    driver.abort();
    drop(client);
    Ok(())
}
