//! Feeds the command metrics from poise's hooks: the first response (the deferral, in
//! `pre_command`), success (`post_command`) and every other ending (`error::on_error`).
//! Times count from the interaction's creation, its id's timestamp, because Discord's 3 s
//! window for a first response counts from there too.
//!
//! Not here: the metrics themselves (`crate::observe`).

use std::time::Duration;

use super::{reply, Context};
use crate::observe::Outcome;

fn since_created(ctx: Context<'_>) -> Duration {
    (chrono::Utc::now() - *ctx.created_at())
        .to_std()
        .unwrap_or_default()
}

/// Defers the command, then records how long its first response took.
pub async fn pre_command(ctx: Context<'_>) {
    reply::defer(ctx).await;
    let name = &ctx.command().qualified_name;
    ctx.data().metrics.first_response(name, since_created(ctx));
}

/// Records a command that succeeded, then hands over any reminder notice waiting for its
/// member (`commands::tell_notices`).
pub async fn post_command(ctx: Context<'_>) {
    ended(ctx, Outcome::Ok);
    super::commands::tell_notices(ctx).await;
}

pub fn ended(ctx: Context<'_>, outcome: Outcome) {
    let name = &ctx.command().qualified_name;
    ctx.data()
        .metrics
        .command_ended(name, outcome, since_created(ctx));
}
