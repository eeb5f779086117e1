-- Who last changed the alert from chat, shown on its cards; '' when the
-- last change came from Defender.
ALTER TABLE alerts ADD COLUMN changed_by TEXT NOT NULL DEFAULT '';
