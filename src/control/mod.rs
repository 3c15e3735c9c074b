//! The control socket: how an operator command reaches the bot that owns its data directory,
//! so the job runs inside the bot, with the bot's own store and scheduler (DESIGN.md, "One
//! owner per data directory").
//!
//! The protocol is line-delimited JSON over `<data_dir>/control.sock`, versioned by
//! [`PROTOCOL`]: the command line sends one [`Request`] line and reads [`Reply`] lines until
//! [`Reply::Done`]. A job keeps running if the command line goes away; its lines are then
//! dropped.
//!
//! - `server.rs`: the bot's side: same-user peers only, one job per connection.
//! - `client.rs`: the command line's side: prints what the bot sends, exits as the job did.

mod client;
mod server;

use serde::{Deserialize, Serialize};

pub use client::send;
pub use server::ControlServer;

/// The version of the protocol; a request with another is refused with a clear reply.
pub const PROTOCOL: u32 = 1;

/// One operator command, as the command line sends it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub protocol: u32,
    /// guildkeep's version and latest schema on the sending side, so the bot can refuse a
    /// job that needs a newer binary than its own.
    pub client: Build,
    /// A [`crate::ops::Job`], kept as JSON until the protocol version is known to match.
    pub job: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub version: String,
    pub schema: u32,
}

impl Build {
    pub fn this() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            schema: crate::store::Migrations::embedded().latest(),
        }
    }
}

/// What the bot sends back while a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reply {
    /// A line for stdout.
    Out(String),
    /// A line for stderr.
    Err(String),
    Progress {
        job: String,
        done: u64,
        total: u64,
    },
    /// The job ended: `error` is the one-line reason it failed.
    Done {
        error: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_one_json_line_each() {
        let reply = Reply::Out("two\nlines".into());
        let line = serde_json::to_string(&reply).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Reply>(&line).unwrap(), reply);
    }
}
