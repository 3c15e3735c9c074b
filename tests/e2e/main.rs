//! End to end: the real bot against an in-process fake Discord (see `support/`). One test
//! target, one module per command group or concern.

#![recursion_limit = "256"]

mod admin;
mod deadlines;
mod events;
mod limits;
mod observe;
mod owner;
mod privacy;
mod quotes;
mod reminders;
mod sharding;
mod snooze;
mod startup;
mod support;
