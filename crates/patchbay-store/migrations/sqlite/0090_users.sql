-- 0090 people who sign in to the dashboard (issue 17): local users with an
-- argon2id password hash (PHC string) and a role (the same roles as API
-- tokens), and their server-side sessions. A session's secret lives only in
-- the browser's cookie; the row keeps its SHA-256. Failed sign-ins are
-- counted per user (the lockout); a disabled user's sessions are revoked.
CREATE TABLE users (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL UNIQUE,
    role                TEXT    NOT NULL,
    password_hash       TEXT    NOT NULL,
    created_at          BIGINT  NOT NULL,
    created_by          TEXT    NOT NULL,
    password_changed_at BIGINT  NOT NULL,
    disabled_at         BIGINT,
    failed_logins       BIGINT  NOT NULL DEFAULT 0,
    locked_until        BIGINT,
    last_login_at       BIGINT
);
CREATE TABLE user_sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   BIGINT  NOT NULL,
    last_seen_at BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    revoked_at   BIGINT,
    remote       TEXT    NOT NULL,
    user_agent   TEXT    NOT NULL
);
CREATE INDEX user_sessions_user ON user_sessions (user_id, id);
