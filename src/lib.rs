//! guildkeep: a Discord bot that keeps every guild's data in its own SQLite file.
//!
//! Layout:
//! - [`bot`]: the Discord bot (serenity + poise): commands, events, delivery.
//! - [`store`]: the only code that touches paths and pools.
//! - [`config`]: `guildkeep.toml`, environment overrides and `.env`.
//! - [`ops`]: operator jobs run from the command line.

pub mod bot;
pub mod config;
pub mod ops;
pub mod store;

#[cfg(test)]
mod test_support;
