-- Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device
-- Cookies"): a browser that has signed in to an account holds a random
-- token whose SHA-256 is kept here. A sign-in that presents it is counted
-- against that device alone, so an attacker who shares the person's
-- address (an office, a carrier's NAT) and trips the address's or the
-- account's throttle does not lock them out. The token proves nothing
-- else: it never signs anyone in.
CREATE TABLE trusted_devices (
  token_hash   BLOB PRIMARY KEY,
  user_id      TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  last_used_at INTEGER NOT NULL
);
CREATE INDEX trusted_devices_user ON trusted_devices (user_id);
