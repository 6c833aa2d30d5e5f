//! A local webhook receiver for alert-delivery tests: a loopback HTTP listener that answers every POST
//! with 200 and hands each request body to the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Instant;

use serde_json::Value;

/// Requests the receiver serves before its thread ends.
const REQUESTS: usize = 64;

/// A running receiver on 127.0.0.1.
pub struct WebhookReceiver {
    /// Its port.
    pub port: u16,
    bodies: Receiver<String>,
}

impl WebhookReceiver {
    /// Starts a receiver on a free loopback port.
    pub fn start() -> WebhookReceiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, bodies) = channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(REQUESTS) {
                let Ok(mut stream) = stream else { continue };
                let Ok(clone) = stream.try_clone() else {
                    continue;
                };
                let mut reader = BufReader::new(clone);
                let mut len = 0usize;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                if tx
                    .send(String::from_utf8_lossy(&body).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        WebhookReceiver { port, bodies }
    }

    /// `alerts.webhook` pointing at this receiver (the path stands for a secret token).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook/T0K3N", self.port)
    }

    /// The next alert delivered (its JSON body) before `deadline`, or `None` when none came.
    pub fn next_before(&self, deadline: Instant) -> Option<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.bodies.recv_timeout(left) {
            Ok(body) => Some(serde_json::from_str(&body).expect("a JSON body")),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }
}
