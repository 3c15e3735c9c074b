// VeraBot's boot sequence for its single database, as a release's src/index.js ran it before
// the bot connected: setupSchema, enhanceSchema, then migrateFromJson (the release's own
// data/quotes.json). Releases whose index.js has it commented out (v2.13.0 on) are left alone.
'use strict';
const fs = require('fs');
const path = require('path');

// Runs the boot sequence of the checkout at `root` if its index.js does; returns
// DatabaseService either way.
async function boot(root) {
  const load = (file) => require(path.join(root, file));
  const database = load('src/services/DatabaseService.js');
  const index = fs.readFileSync(path.join(root, 'src', 'index.js'), 'utf8');
  if (/^\s*await database\.setupSchema\(/m.test(index)) {
    const { enhanceSchema } = load('src/lib/schema-enhancement.js');
    const { migrateFromJson } = load('src/lib/migration.js');
    await database.setupSchema(database.getDatabase());
    await enhanceSchema(database.getDatabase());
    await migrateFromJson(database);
  }
  return database;
}

module.exports = { boot };
