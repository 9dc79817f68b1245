-- roomserver schema 1 (SQLite): the same tables as migrations/postgres/0001_initial.sql, which
-- documents them. NIDs are INTEGER PRIMARY KEY (the rowid); AUTOINCREMENT where rows can be
-- deleted, so that a NID is never reused. Booleans are 0/1. Packed BLOBs hold the same
-- roomserver.storage.codec formats as PostgreSQL's BYTEA columns.

CREATE TABLE rooms (
    room_nid            INTEGER PRIMARY KEY AUTOINCREMENT,
    last_event_sent_nid INTEGER NOT NULL DEFAULT 0,
    state_snapshot_nid  INTEGER NOT NULL DEFAULT 0,
    room_id             TEXT NOT NULL UNIQUE,
    room_version        TEXT NOT NULL,
    latest_event_nids   BLOB NOT NULL DEFAULT x''
);

CREATE TABLE event_types (
    event_type_nid INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type     TEXT NOT NULL UNIQUE
);
INSERT INTO event_types (event_type_nid, event_type) VALUES
    (1, 'm.room.create'), (2, 'm.room.power_levels'), (3, 'm.room.join_rules'),
    (4, 'm.room.third_party_invite'), (5, 'm.room.member'), (6, 'm.room.redaction'),
    (7, 'm.room.history_visibility'), (8, 'm.room.name'), (9, 'm.room.topic'),
    (10, 'm.room.avatar'), (11, 'm.room.canonical_alias'), (12, 'm.room.aliases'),
    (13, 'm.room.guest_access'), (14, 'm.room.encryption'), (15, 'm.room.server_acl'),
    (16, 'm.room.tombstone'), (17, 'm.room.pinned_events'), (18, 'm.room.message'),
    (19, 'm.room.encrypted'), (20, 'm.reaction');
UPDATE sqlite_sequence SET seq = 255 WHERE name = 'event_types';

CREATE TABLE event_state_keys (
    event_state_key_nid INTEGER PRIMARY KEY AUTOINCREMENT,
    event_state_key     TEXT NOT NULL UNIQUE
);
INSERT INTO event_state_keys (event_state_key_nid, event_state_key) VALUES (1, '');

CREATE TABLE events (
    event_nid           INTEGER PRIMARY KEY AUTOINCREMENT,
    depth               INTEGER NOT NULL,
    state_snapshot_nid  INTEGER NOT NULL DEFAULT 0,
    event_state_key_nid INTEGER NOT NULL DEFAULT 0,
    room_nid            INTEGER NOT NULL,
    event_type_nid      INTEGER NOT NULL,
    is_outlier          INTEGER NOT NULL DEFAULT 0,
    is_rejected         INTEGER NOT NULL DEFAULT 0,
    is_soft_failed      INTEGER NOT NULL DEFAULT 0,
    event_id            TEXT NOT NULL UNIQUE,
    auth_event_nids     BLOB NOT NULL,
    rejection_reason    TEXT NOT NULL DEFAULT ''
);
INSERT INTO sqlite_sequence (name, seq) VALUES ('events', 0);  -- for reserve_ids

CREATE TABLE event_json (
    event_nid  INTEGER PRIMARY KEY,
    event_json BLOB NOT NULL
);

CREATE TABLE state_snapshots (
    state_snapshot_nid INTEGER PRIMARY KEY AUTOINCREMENT,
    base_snapshot_nid  INTEGER NOT NULL,
    room_nid           INTEGER NOT NULL,
    entry_count        INTEGER NOT NULL,
    state_hash         BLOB NOT NULL,
    block_nids         BLOB NOT NULL,
    delta              BLOB NOT NULL,
    UNIQUE (room_nid, state_hash)
);

CREATE TABLE state_blocks (
    state_block_nid INTEGER PRIMARY KEY AUTOINCREMENT,
    block_hash      BLOB NOT NULL UNIQUE,
    entries         BLOB NOT NULL
);

CREATE TABLE previous_events (
    prev_event_nid INTEGER NOT NULL,
    event_nid      INTEGER NOT NULL,
    PRIMARY KEY (prev_event_nid, event_nid)
) WITHOUT ROWID;

CREATE TABLE backward_extremities (
    prev_event_id TEXT NOT NULL,
    event_nid     INTEGER NOT NULL,
    room_nid      INTEGER NOT NULL,
    PRIMARY KEY (prev_event_id, event_nid)
) WITHOUT ROWID;
CREATE INDEX backward_extremities_room ON backward_extremities (room_nid);

CREATE TABLE room_aliases (
    alias      TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL,
    creator_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX room_aliases_room_id ON room_aliases (room_id);

CREATE TABLE invites (
    invite_event_id   TEXT PRIMARY KEY,
    target_nid        INTEGER NOT NULL,
    sender_nid        INTEGER NOT NULL,
    room_nid          INTEGER NOT NULL,
    retired           INTEGER NOT NULL DEFAULT 0,
    invite_event_json BLOB NOT NULL
);
CREATE INDEX invites_pending ON invites (target_nid, room_nid) WHERE NOT retired;

CREATE TABLE memberships (
    target_nid INTEGER NOT NULL,
    sender_nid INTEGER NOT NULL,
    event_nid  INTEGER NOT NULL,
    room_nid   INTEGER NOT NULL,
    membership INTEGER NOT NULL,
    forgotten  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_nid, target_nid)
) WITHOUT ROWID;
CREATE INDEX memberships_target ON memberships (target_nid, membership);

CREATE TABLE transactions (
    session_id     INTEGER NOT NULL,
    user_id        TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    PRIMARY KEY (session_id, user_id, transaction_id)
) WITHOUT ROWID;

CREATE TABLE redactions (
    redaction_event_id TEXT PRIMARY KEY,
    redacts_event_id   TEXT NOT NULL,
    validated          INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX redactions_redacts ON redactions (redacts_event_id);

CREATE TABLE output_log (
    position INTEGER PRIMARY KEY,
    payload  BLOB NOT NULL
);
