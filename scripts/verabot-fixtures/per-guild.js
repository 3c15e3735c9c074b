// Builds VeraBot's per-guild files (data/db/guilds/<GUILD_ID>/quotes.db, v2.10.0 to today) by
// running VeraBot's own code from a checkout: GuildDatabaseManager creates each guild's file
// with its schema, and the guild-aware services its slash commands call write every row.
//
// Usage: node per-guild.js VERABOT_CHECKOUT OUT_DIR   (writes OUT_DIR/guilds/<id>/quotes.db)
//
// v2.10.0 to v2.13.0 wrote only quotes, tags and ratings there: their guild-aware reminder and
// opt-in services wrote into the single database, into `guildId` columns its schema never had,
// and failed. Such a failure is printed (`VeraBot could not …`) and the script goes on, so that
// the files hold what that release could write; the tests' counts say what that is.
'use strict';
const fs = require('fs');
const path = require('path');
const { boot } = require('./boot');

const [root, out] = process.argv.slice(2).map((p) => path.resolve(p));
const load = (file) => require(path.join(root, file));

// Runs one command's worth of VeraBot calls; prints what failed instead of stopping.
async function attempt(what, calls) {
  try {
    await calls();
  } catch (err) {
    console.error(`VeraBot could not ${what}: ${err.message}`);
  }
}

const GUILD_A = '400000000000000001';
const GUILD_B = '400000000000000002';
const ANN = '180000000000000001';
const BO = '180000000000000002';
const ROLE = '280000000000000001';

async function main() {
  process.chdir(root);
  const database = await boot(root); // up to v2.12.0 every start did; the single file is not kept
  const manager = load('src/services/GuildDatabaseManager.js');
  const quotes = load('src/services/GuildAwareDatabaseService.js');
  const reminders = load('src/services/GuildAwareReminderService.js');
  const comms = load('src/services/GuildAwareCommunicationService.js');

  // Guild A: /add-quote, /rate-quote, /tag-quote, /update-quote, reminders, /opt-in.
  const first = await quotes.addQuote(GUILD_A, 'Per-guild ✨ quote', 'Zoë');
  const second = await quotes.addQuote(GUILD_A, 'Edited later', 'Ann');
  await quotes.updateQuote(GUILD_A, second, 'Edited — now', 'Ann B.');
  await quotes.rateQuote(GUILD_A, first, ANN, 5);
  await quotes.rateQuote(GUILD_A, first, BO, 4);
  await quotes.tagQuote(GUILD_A, first, 'wisdom');
  await attempt('write guild A\'s reminders', async () => {
    const dm = await reminders.createReminder(GUILD_A, {
      subject: 'Guild A standup',
      category: 'Meeting',
      when: '2031-03-04T09:30:00.000Z',
      content: 'Bring the numbers',
    });
    await reminders.addReminderAssignment(GUILD_A, dm, 'user', ANN);
    const role = await reminders.createReminder(GUILD_A, {
      subject: 'Guild A raid',
      category: 'Event',
      when: '2031-08-08T20:00:00.000Z',
    });
    await reminders.addReminderAssignment(GUILD_A, role, 'role', ROLE);
    const done = await reminders.createReminder(GUILD_A, {
      subject: 'Guild A done',
      category: 'Task',
      when: '2031-10-10T10:00:00.000Z',
    });
    await reminders.addReminderAssignment(GUILD_A, done, 'user', BO);
    await reminders.updateReminder(GUILD_A, done, { status: 'completed' });
  });
  await attempt('write guild A\'s opt-ins', async () => {
    await comms.optIn(GUILD_A, ANN);
    await comms.optOut(GUILD_A, BO);
  });

  // Guild B: the same member opted in here only; one quote.
  await quotes.addQuote(GUILD_B, 'Only in guild B', 'Bo');
  await attempt('write guild B\'s opt-ins', () => comms.optIn(GUILD_B, BO));

  await manager.closeAllDatabases();
  await database.closeDatabase();
  for (const guild of [GUILD_A, GUILD_B]) {
    const dir = path.join(out, 'guilds', guild);
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(path.join(root, 'data', 'db', 'guilds', guild, 'quotes.db'), path.join(dir, 'quotes.db'));
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
