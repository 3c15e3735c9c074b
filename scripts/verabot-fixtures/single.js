// Builds one VeraBot single database (data/db/quotes.db, releases up to v2.9.0) by running
// VeraBot's own code from a checkout: its boot sequence (setupSchema, enhanceSchema,
// migrateFromJson, as src/index.js runs them) and then the service functions its slash
// commands call. Nothing here writes SQL of its own: every row is VeraBot's.
//
// Usage: node --expose-gc single.js VERABOT_CHECKOUT OUT.db
// The checkout needs node_modules with sqlite3 (see ./generate). Older releases lack the
// reminder and opt-in services; what the checkout does not have is left out.
'use strict';
const fs = require('fs');
const path = require('path');

const [root, out] = process.argv.slice(2).map((p) => path.resolve(p));
const has = (file) => fs.existsSync(path.join(root, file));
const load = (file) => require(path.join(root, file));
const { boot } = require('./boot');

// Discord users of the fixture (snowflakes as VeraBot stored them: text).
const ANN = '180000000000000001';
const BO = '180000000000000002';
const CY = '180000000000000003';
const DEE = '180000000000000004'; // opted in, appears nowhere else
const ROLE = '280000000000000001';
// Thirty members, each with one DM reminder of their own (the headline case).
const MEMBERS = Array.from({ length: 30 }, (_, i) => `1800000000000001${String(i + 1).padStart(2, '0')}`);

async function main() {
  process.chdir(root);
  const database = await boot(root);

  // /add-quote, /update-quote, /delete-quote.
  const add = (text, author) => database.addQuote(text, author);
  const plain = await add('Simple is better than complex.', 'Tim Peters');
  const unicode = await add('Ünïcødé ✨ «quotes» — 日本語も', 'Zoë');
  const multiline = await add('First line\nsecond line, with "quotes" and \'apostrophes\'', undefined);
  const edited = await add('Before the edit', 'Ann');
  const gone = await add('Deleted later', 'Bo');
  await database.updateQuote(edited, 'After the edit', 'Ann B.');
  await database.deleteQuote(gone);

  // /rate-quote (a second rating by the same member replaces the first) and /tag-quote.
  await database.rateQuote(plain, ANN, 5);
  await database.rateQuote(plain, BO, 2);
  await database.rateQuote(unicode, ANN, 3);
  await database.rateQuote(unicode, ANN, 4);
  const funny = await database.addTag('Funny', 'laughs');
  await database.addTag('Wisdom');
  const wisdom = await database.getTagByName('wisdom');
  await database.addTagToQuote(multiline, funny.id);
  await database.addTagToQuote(plain, wisdom.id);
  await database.addTagToQuote(unicode, wisdom.id);

  if (has('src/services/CommunicationService.js')) {
    // /opt-in, /opt-out.
    const comms = load('src/services/CommunicationService.js');
    await comms.optIn(ANN);
    await comms.optIn(BO);
    await comms.optOut(CY);
    await comms.optIn(DEE);
    for (const member of MEMBERS) {
      await comms.optIn(member);
    }
  }

  if (has('src/services/ReminderService.js')) {
    const reminders = load('src/services/ReminderService.js');
    const notifications = reminders; // recordNotification lives in the same service
    const create = async (data, assignees) => {
      const id = await reminders.createReminder(data);
      for (const [type, who] of assignees) {
        await reminders.addReminderAssignment(id, type, who);
      }
      return id;
    };
    // /create-reminder for a member: a DM, with everything the command takes.
    await create(
      {
        subject: 'Team standup',
        category: 'Meeting',
        when: '2031-03-04T09:30:00Z',
        content: 'Bring the numbers',
        link: 'https://example.com/agenda',
        image: 'https://example.com/chart.png',
      },
      [['user', ANN]],
    );
    // The same assignment twice: reminder_assignments has no UNIQUE.
    await create({ subject: 'Water the plants', category: 'General', when: '2031-05-06T18:00:00.000Z' }, [
      ['user', BO],
      ['user', BO],
    ]);
    // Notified ahead of the event (VeraBot fires at notificationTime).
    await create(
      {
        subject: 'Conference talk',
        category: 'Event',
        when: '2031-07-01T12:00:00Z',
        notificationTime: '2031-06-30T12:00:00.000Z',
      },
      [['user', ANN]],
    );
    // For a role: VeraBot posted these in REMINDER_NOTIFICATION_CHANNEL.
    await create({ subject: 'Raid night', category: 'Event', when: '2031-08-08T20:00:00Z' }, [['role', ROLE]]);
    // The creator chose "server only" for an opted-out member (the reminder_server_ button).
    const server = await create({ subject: 'Pay rent', category: 'Task', when: '2031-09-01T08:00:00Z' }, [
      ['user', CY],
    ]);
    await reminders.updateNotificationMethod(server, 'server');
    // Delivered: the notifier records it and marks it completed.
    const done = await create({ subject: 'Already sent', category: 'Task', when: '2031-10-10T10:00:00Z' }, [
      ['user', BO],
    ]);
    await notifications.recordNotification(done, true);
    await reminders.updateReminder(done, { status: 'completed' });
    // /delete-reminder: a soft delete.
    const cancelled = await create({ subject: 'Called off', category: 'Meeting', when: '2031-11-11T11:00:00Z' }, [
      ['user', ANN],
    ]);
    await reminders.deleteReminder(cancelled);
    // /update-reminder.
    const updated = await create({ subject: 'Dentist', category: 'General', when: '2031-12-01T07:45:00Z' }, [
      ['user', ANN],
    ]);
    await reminders.updateReminder(updated, { subject: 'Dentist (moved)', when: '2031-12-02T07:45:00Z' });
    // Nobody assigned: VeraBot logged "No assignees" and sent nothing.
    await create({ subject: 'Nobody to tell', category: 'General', when: '2032-01-01T00:00:00Z' }, []);
    // /create-reminder thirty times, each for another opted-in member, an hour apart.
    for (const [i, member] of MEMBERS.entries()) {
      const when = new Date(Date.UTC(2031, 1, 1, 9) + i * 3600 * 1000).toISOString();
      await create({ subject: `Check-in ${i + 1} of 30`, category: 'General', when, content: `For member ${i + 1}` }, [
        ['user', member],
      ]);
    }
  }

  if (has('src/services/RolePermissionService.js')) {
    // CommandBase's permission check logged every command run here (ROLE_AUDIT_LOGGING is on
    // unless set to 'false'): the one table with a guild id that VeraBot's code wrote into
    // its single database. The import does not read it.
    const permissions = load('src/services/RolePermissionService.js');
    await permissions.auditLog({
      userId: ANN,
      guildId: '400000000000000001',
      commandName: 'add-quote',
      result: 'EXECUTED',
      userTier: 0,
      requiredTier: 0,
    });
    // auditLog neither waits for its insert nor finalizes its statement, so closing would
    // fail with SQLITE_BUSY: wait for the row, then let the statement be collected.
    const db = database.getDatabase();
    const logged = () => new Promise((resolve, reject) =>
      db.get('SELECT count(*) AS n FROM permission_audit_log', (err, row) => (err ? reject(err) : resolve(row.n))));
    while ((await logged()) === 0) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    for (let i = 0; i < 3; i += 1) {
      global.gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  if (typeof database.setProxyConfig === 'function' && has('src/services/ProxyConfigService.js')) {
    // An extra table the import does not read.
    await database.setProxyConfig('webhook_url', 'https://example.com/hook', false);
  }

  await database.closeDatabase();
  fs.copyFileSync(path.join(root, 'data', 'db', 'quotes.db'), out);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
