//! Full-text searches a member may run: at most one per interval each. Autocomplete asks on
//! every keystroke, so without a limit one member typing fast runs a search per letter.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

/// At most one admitted use per member per `every`.
pub struct Throttle {
    every: Duration,
    last: Mutex<HashMap<u64, Instant>>,
}

impl Throttle {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: Mutex::default(),
        }
    }

    /// Whether `member` may search now; if so, counts this search.
    pub fn admit(&self, member: u64) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        // Only members within their interval are kept: the map stays as small as the
        // number of members searching right now.
        last.retain(|_, at| now.duration_since(*at) < self.every);
        if last.contains_key(&member) {
            return false;
        }
        last.insert(member, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_search_per_member_per_interval() {
        let throttle = Throttle::new(Duration::from_secs(1));
        assert!(throttle.admit(1));
        assert!(!throttle.admit(1), "again at once");
        assert!(throttle.admit(2), "another member is not held up");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(throttle.admit(1));
    }
}
