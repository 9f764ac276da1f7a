//! Health: whether a long-running command is doing its job, with the one-line reason
//! when it is not; and [`Monitor`], the registry and the health that a server shows.
//!
//! Owns the state `/healthz` answers from; the feeds ([`crate::feed`]) decide it.

use std::sync::{Arc, Mutex, PoisonError};

use crate::registry::Registry;

/// Healthy, or failing with a reason. Clones share one state.
#[derive(Clone, Debug)]
pub struct Health(Arc<Mutex<Result<(), String>>>);

impl Health {
    /// Starts failing with `reason` (nothing has succeeded yet).
    pub fn starting(reason: impl Into<String>) -> Self {
        Health(Arc::new(Mutex::new(Err(one_line(&reason.into())))))
    }

    pub fn set_ok(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Ok(());
    }

    /// Fails with `reason`, made one line.
    pub fn set_failing(&self, reason: &str) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Err(one_line(reason));
    }

    /// `Ok` when healthy, else the reason.
    pub fn get(&self) -> Result<(), String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Default for Health {
    fn default() -> Self {
        Health::starting("starting: nothing has been reported yet")
    }
}

/// Line breaks and other control characters become spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// What one server shows: the metrics at `/metrics`, the health at `/healthz`.
/// Clones share both.
#[derive(Clone, Debug, Default)]
pub struct Monitor {
    pub registry: Registry,
    pub health: Health,
}

impl Monitor {
    pub fn new() -> Self {
        Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_one_line() {
        let h = Health::starting("a\nb");
        assert_eq!(h.get(), Err("a b".into()));
        h.set_ok();
        assert_eq!(h.get(), Ok(()));
        h.set_failing("x\r\ny");
        assert_eq!(h.get(), Err("x  y".into()));
    }
}
