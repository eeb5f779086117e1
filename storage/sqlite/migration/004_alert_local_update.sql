-- When msspbot last changed the alert itself (ack, resolve, reopen from
-- chat), in Unix nanoseconds; 0 when never. Retention ages a resolved
-- alert by the later of this and Defender's last_updated_at: an old alert
-- resolved in chat today is not purged tonight.
ALTER TABLE alerts ADD COLUMN local_updated_at INTEGER NOT NULL DEFAULT 0;
