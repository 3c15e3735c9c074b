-- Whether the member who set a reminder has yet to be told that it stopped, or that a time of
-- it could not be delivered for a reason they can fix (DMs closed, a permission missing): set
-- by the scheduler, cleared once they are told (by DM, or at their next /remind).
ALTER TABLE reminders ADD COLUMN notice INTEGER NOT NULL DEFAULT 0 CHECK (notice IN (0, 1));
