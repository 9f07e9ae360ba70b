//! The session's timer table: one optional deadline per timer kind, no sleeping tasks.

use std::time::Instant;

/// The timers an Engine.IO session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// When to send the next ping.
    Ping,
    /// When an unanswered ping times the session out.
    PongDeadline,
    /// When a probing WebSocket that has not completed the upgrade is dropped.
    Upgrade,
    /// When a closing polling session stops waiting for the GET that carries its close packet.
    Close,
    /// During a probed upgrade: when a parked polling GET is next released with a noop.
    UpgradeNoop,
}

const ALL: [Timer; 5] = [
    Timer::Ping,
    Timer::PongDeadline,
    Timer::Upgrade,
    Timer::Close,
    Timer::UpgradeNoop,
];

/// Deadlines by timer kind.
#[derive(Clone, Debug, Default)]
pub struct TimerTable {
    deadlines: [Option<Instant>; 5],
}

impl TimerTable {
    /// Arms (or re-arms) a timer.
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer as usize] = Some(at);
    }

    /// Disarms a timer.
    pub fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    /// Disarms every timer.
    pub fn stop_all(&mut self) {
        self.deadlines = [None; 5];
    }

    /// A timer's deadline, if armed.
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer as usize]
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Disarms and returns the earliest timer that has expired at `now`, with its deadline.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(Timer, Instant)> {
        let (timer, at) = ALL
            .into_iter()
            .filter_map(|t| self.get(t).map(|at| (t, at)))
            .filter(|(_, at)| *at <= now)
            .min_by_key(|(_, at)| *at)?;
        self.stop(timer);
        Some((timer, at))
    }
}
