-- A repeat that ends after a number of times: that number as the member gave it, counted from
-- the due time it was set at. recurrence_end then holds the last of those times, so sending
-- and skipping count nothing; this column says how the end was given (shown back to members)
-- and lets an edit that moves the series keep the number of times still to come.
ALTER TABLE reminders ADD COLUMN recurrence_count INTEGER
    CHECK (recurrence_count IS NULL OR recurrence_count BETWEEN 1 AND 10000);
