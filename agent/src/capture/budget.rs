//! A rate budget for work a process can make the agent do on its behalf (reading the kernel's socket
//! tables), so a program repeating a cheap syscall cannot make capture fall behind: past the budget the
//! work is skipped, and what it would have found stays unknown.

use std::time::Instant;

/// A token bucket: `rate` tokens a second, at most `rate` saved up.
#[derive(Debug)]
pub struct Budget {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl Budget {
    /// A full budget of `rate` a second.
    pub fn new(rate: u32) -> Budget {
        Budget {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            refilled: Instant::now(),
        }
    }

    /// Takes one token; false when the budget is spent for now.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.rate);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spends_then_refuses() {
        let mut b = Budget::new(3);
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take());
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(b.take(), "refilled");
    }
}
