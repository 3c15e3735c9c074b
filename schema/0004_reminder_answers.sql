-- How a member answered a delivered time through the buttons on its message: 'snoozed' (sent
-- again later: the one-off itself re-armed, or a one-off copy of a repeat's time) or 'done'.
-- Set once, by a compare-and-set on NULL, so that a second press or a double click on the
-- same message never snoozes twice. NULL: not answered (and every row from before).
ALTER TABLE reminder_deliveries ADD COLUMN answer TEXT
    CHECK (answer IS NULL OR answer IN ('snoozed', 'done'));
