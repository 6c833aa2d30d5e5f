//! Which collector the agent talks to when it is given several: the replicas of one collector behind a
//! shared database, so any of them accepts any batch of this host and switching between them mid-stream is
//! safe (the next batch is checked against the database's chain state; a replayed one is answered as
//! duplicates).
//!
//! The agent sticks to the collector that works. When it fails in a way another replica may not (a
//! transport error, a 429 or 5xx, a 2xx that is not the answer asked for) the agent moves to the next URL at
//! once; only when every URL has failed in a row (a round) does the caller back off. Answers every replica
//! would give alike (401, 403, a refused batch, a sequence conflict) are not failures of the replica and
//! never move it. This module only keeps the position and says when to back off; it never sleeps.

/// Whether an HTTP status from a collector is worth trying at another replica: 429 (this replica is busy)
/// and 5xx (this replica, or what stands before it, is broken or overloaded).
pub fn status_fails_over(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// What to do after a failure at the current collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failover {
    /// Another collector is now current and has not failed this round: try it at once.
    TryNext,
    /// Every collector failed this round: back off before the next attempt (at the collector now current,
    /// the next in the list).
    BackOff,
}

/// The configured collector URLs, in order, and the one in use.
#[derive(Clone, Debug)]
pub struct Collectors {
    /// What talks to the collectors (`shipping`, `verdicts`), for the logs.
    stream: &'static str,
    urls: Vec<String>,
    current: usize,
    /// Failures in a row since the last answer or the last back-off.
    failed_in_round: usize,
    switches: u64,
}

impl Collectors {
    /// Starts at the first of `urls` (at least one; an empty list is refused by the config check, and is
    /// treated here as one empty URL rather than a panic). `stream` names the user in log lines.
    pub fn new(stream: &'static str, urls: &[String]) -> Collectors {
        let urls = if urls.is_empty() {
            vec![String::new()]
        } else {
            urls.to_vec()
        };
        Collectors {
            stream,
            urls,
            current: 0,
            failed_in_round: 0,
            switches: 0,
        }
    }

    /// Every configured URL, in order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The position of the collector in use in [`Collectors::urls`].
    pub fn index(&self) -> usize {
        self.current
    }

    /// The URL of the collector in use.
    pub fn current(&self) -> &str {
        self.urls.get(self.current).map_or("", String::as_str)
    }

    /// How many times the collector in use changed.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// The collector in use answered (whatever it said, it was not a reason to fail over): the round
    /// starts again, and the agent stays with it.
    pub fn answered(&mut self) {
        self.failed_in_round = 0;
    }

    /// The collector in use failed in a way another may not, for `reason`: moves to the next URL (logged
    /// once, with from, to and reason) and says whether to try at once or back off first.
    pub fn failed(&mut self, reason: &str) -> Failover {
        self.failed_in_round += 1;
        if self.urls.len() > 1 {
            let from = self.current;
            self.current = (self.current + 1) % self.urls.len();
            self.switches += 1;
            tracing::warn!(
                stream = self.stream,
                from = %self.urls[from],
                to = %self.urls[self.current],
                reason,
                "switching collector"
            );
        }
        if self.failed_in_round >= self.urls.len() {
            self.failed_in_round = 0;
            Failover::BackOff
        } else {
            Failover::TryNext
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Collectors, Failover, status_fails_over};

    fn urls(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("https://c{i}:8470")).collect()
    }

    #[test]
    fn only_busy_and_broken_statuses_fail_over() {
        for status in [429, 500, 502, 503, 504, 599] {
            assert!(status_fails_over(status), "{status}");
        }
        for status in [200, 201, 400, 401, 403, 404, 409, 413, 422, 600] {
            assert!(!status_fails_over(status), "{status}");
        }
    }

    #[test]
    fn a_failure_moves_on_at_once_until_a_round_is_exhausted() {
        let mut c = Collectors::new("shipping", &urls(3));
        assert_eq!(c.current(), "https://c0:8470");
        assert_eq!(c.failed("connection refused"), Failover::TryNext);
        assert_eq!(c.current(), "https://c1:8470");
        assert_eq!(c.failed("HTTP 503"), Failover::TryNext);
        assert_eq!(c.current(), "https://c2:8470");
        assert_eq!(c.failed("timeout"), Failover::BackOff, "every URL failed");
        assert_eq!(c.index(), 0, "the next round starts at the next URL");
        assert_eq!(c.switches(), 3);
        // The next round again tries every URL before backing off.
        assert_eq!(c.failed("refused"), Failover::TryNext);
        assert_eq!(c.failed("refused"), Failover::TryNext);
        assert_eq!(c.failed("refused"), Failover::BackOff);
    }

    #[test]
    fn it_sticks_to_a_collector_that_answers() {
        let mut c = Collectors::new("shipping", &urls(2));
        assert_eq!(c.failed("refused"), Failover::TryNext);
        for _ in 0..10 {
            c.answered();
            assert_eq!(c.current(), "https://c1:8470", "no round-robin per batch");
        }
        assert_eq!(c.switches(), 1);
        // An answer starts the round again: one failure later, the other URL is tried at once.
        assert_eq!(c.failed("HTTP 502"), Failover::TryNext);
        assert_eq!(c.current(), "https://c0:8470");
        c.answered();
        assert_eq!(c.failed("HTTP 502"), Failover::TryNext);
        assert_eq!(c.failed("HTTP 502"), Failover::BackOff);
    }

    #[test]
    fn one_collector_backs_off_at_every_failure_and_never_switches() {
        let mut c = Collectors::new("verdicts", &urls(1));
        for _ in 0..3 {
            assert_eq!(c.failed("refused"), Failover::BackOff);
            assert_eq!(c.current(), "https://c0:8470");
        }
        assert_eq!(c.switches(), 0);
        let empty = Collectors::new("verdicts", &[]);
        assert_eq!((empty.current(), empty.urls().len()), ("", 1));
    }
}
