-- When the next attempt at a due time may be made, after a transient failure: kept in the
-- database so that a restart waits for it instead of retrying at once. NULL: no wait.
-- From this version on, `attempts` (here and in reminders) counts attempts whose outcome was
-- recorded; a claim made ahead of its send and never sent (a shutdown) is not counted.
ALTER TABLE reminder_deliveries ADD COLUMN retry_at INTEGER;
