-- A new e-mail address waits here until the link sent to it is opened;
-- notifications keep going to the confirmed address until then.
ALTER TABLE accounts ADD COLUMN email_pending TEXT NOT NULL DEFAULT '';
