//! systemd's notification protocol (`Type=notify`): `READY=1` once the bot is ready,
//! `STOPPING=1` when it begins to stop, and a watchdog ping from a task on the runtime, so that
//! a process whose runtime no longer schedules tasks is restarted (`WatchdogSec=` in the unit).
//!
//! Without `NOTIFY_SOCKET` (not run by systemd) every call does nothing. Not here: deciding
//! when the bot is ready (`mod.rs`, fed by the bot's gateway sampler).

use sd_notify::NotifyState;
use tokio::{sync::watch, task::JoinHandle};

fn notify(state: NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

pub fn ready() {
    notify(NotifyState::Ready);
}

pub fn stopping() {
    notify(NotifyState::Stopping);
}

/// Pings the watchdog at half its interval until `stop` turns true; `None` when systemd
/// asked for no watchdog.
pub fn watchdog(mut stop: watch::Receiver<bool>) -> Option<JoinHandle<()>> {
    let every = sd_notify::watchdog_enabled()? / 2;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => notify(NotifyState::Watchdog),
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::UnixDatagram;

    use super::*;

    async fn next(socket: &UnixDatagram) -> String {
        let mut buf = [0; 256];
        let len = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
            .await
            .expect("a notification within 10 s")
            .expect("received");
        String::from_utf8_lossy(&buf[..len]).into_owned()
    }

    /// The only test in this binary that sets `NOTIFY_SOCKET`, so no other test's
    /// notifications reach it.
    #[tokio::test]
    async fn ready_and_watchdog_pings_reach_the_notify_socket() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bound");
        std::env::set_var("NOTIFY_SOCKET", &path);
        std::env::set_var("WATCHDOG_USEC", "20000");
        std::env::set_var("WATCHDOG_PID", std::process::id().to_string());

        ready();
        assert_eq!(next(&socket).await, "READY=1\n");
        let (stop, stopped) = watch::channel(false);
        let pinging = watchdog(stopped).expect("the watchdog is asked for");
        assert_eq!(next(&socket).await, "WATCHDOG=1\n");
        assert_eq!(next(&socket).await, "WATCHDOG=1\n");
        stop.send_replace(true);
        pinging.await.expect("the ping task ends when told");
        stopping();
        // A ping sent before the task saw `stop` may still be queued ahead.
        let mut last = next(&socket).await;
        while last == "WATCHDOG=1\n" {
            last = next(&socket).await;
        }
        assert_eq!(last, "STOPPING=1\n");
        std::env::remove_var("NOTIFY_SOCKET");
    }
}
