//! guildkeep: a Discord bot that keeps every guild's data in its own SQLite file.
//!
//! Layout:
//! - [`bot`]: the Discord bot (serenity + poise): commands, events, delivery.
//! - [`store`]: the only code that touches paths and pools.
//! - [`cli`]: the command line of the `guildkeep` binary.
//! - [`control`]: the control socket through which operator commands reach the running bot.
//! - [`config`]: `guildkeep.toml`, environment overrides and `.env`.
//! - [`quotes`]: saving, finding, rating and tagging quotes; no Discord types.
//! - [`privacy`]: a member's export and erasure; what deleting a whole guild would lose.
//! - [`ops`]: operator jobs, run by the data directory's owner.
//! - [`observe`]: Prometheus metrics, `/healthz` and `/readyz`, systemd notifications.
//! - [`optins`]: a member's DM opt-in, time zone and preferences.
//! - [`retention`]: how long finished reminders and delivery records are kept.
//! - [`reminders`]: reminder rules and storage, time parsing and the one scheduler.
//! - [`timings`]: duration histograms in plain atomics, kept by the store and the scheduler
//!   and read by [`observe`].

pub mod bot;
pub mod cli;
pub mod config;
pub mod control;
pub mod observe;
pub mod ops;
pub mod optins;
pub mod privacy;
pub mod quotes;
pub mod reminders;
pub mod retention;
mod sql;
pub mod store;
pub mod timings;

#[cfg(test)]
mod test_support;
