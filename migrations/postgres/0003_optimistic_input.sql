-- roomserver schema 3 (PostgreSQL): the input functions of schema 2, reshaped so that a
-- request can also be written WITHOUT an explicit transaction (docs/input.md, "Two ways in"):
--
-- * roomserver_input_prepare locks the rooms only when asked to, and no longer hands out
--   event NIDs (the service reserves them ahead, in blocks, before its requests).
-- * rooms.write_count counts the writes of a room's row (latest events, last sent event,
--   current state); every write adds one.
-- * roomserver_input_write checks, under the rooms' row locks, that nothing it was decided
--   on has changed since it was read: each room's write_count is the one the request saw,
--   as many of the new events are already cited by stored ones as the request saw, and
--   none of the new events or client transaction IDs is stored yet. If anything did change
--   it raises serialization_failure (40001) and writes nothing: the service then redoes
--   the request under the room locks. It also stores the request's client transaction
--   IDs, which schema 2 left to a separate statement. A NULL array reads as an empty one.
--
-- A request read under the room locks (BEGIN, prepare with lock_rooms, write, COMMIT) passes
-- these checks by construction; one read without locks (or from the service's cache of
-- committed rows) passes them unless another writer changed the room in between.

ALTER TABLE rooms ADD COLUMN write_count BIGINT NOT NULL DEFAULT 0;

DROP FUNCTION roomserver_input_prepare(TEXT[], TEXT[], TEXT[]);
DROP FUNCTION roomserver_input_write(
    BIGINT[], TEXT[], INTEGER[], INTEGER[], BIGINT[], BIGINT[], BIGINT[], BYTEA[], BOOLEAN[],
    BOOLEAN[], BOOLEAN[], TEXT[], BYTEA[], BOOLEAN, BIGINT[], BIGINT[], TEXT[], BIGINT[],
    INTEGER[], INTEGER[], BYTEA[], BIGINT[], BIGINT[], BYTEA[]);

-- What the pipeline needs to decide a request's events, one row per item, tagged by kind:
--   0: a room       (nid = last_event_sent_nid, id = room_id, room_nid, depth = write_count,
--                    snapshot_nid, packed = latest_event_nids, reason = room_version)
--   1: an event     (the events row)
--   2: a late event (id = the event ID of a new event that stored events already cite)
-- With lock_rooms the rooms are locked first (in room NID order, so overlapping requests
-- never deadlock) and, PL/pgSQL taking a snapshot per statement, the lookups after it see
-- everything the previous holder of a lock committed.
CREATE FUNCTION roomserver_input_prepare(
    room_ids TEXT[], wanted_ids TEXT[], new_ids TEXT[], lock_rooms BOOLEAN
)
RETURNS TABLE (
    kind SMALLINT, nid BIGINT, id TEXT, room_nid INTEGER, type_nid INTEGER,
    state_key_nid BIGINT, depth BIGINT, snapshot_nid BIGINT, packed BYTEA, is_outlier BOOLEAN,
    is_rejected BOOLEAN, is_soft_failed BOOLEAN, reason TEXT
) LANGUAGE plpgsql VOLATILE SET enable_seqscan = off AS $$
BEGIN
    IF lock_rooms THEN
        RETURN QUERY
            SELECT 0::SMALLINT, r.last_event_sent_nid, r.room_id, r.room_nid, NULL::INTEGER,
                   NULL::BIGINT, r.write_count, r.state_snapshot_nid, r.latest_event_nids,
                   NULL::BOOLEAN, NULL::BOOLEAN, NULL::BOOLEAN, r.room_version
            FROM rooms AS r WHERE r.room_id = ANY(room_ids) ORDER BY r.room_nid FOR UPDATE;
    ELSE
        RETURN QUERY
            SELECT 0::SMALLINT, r.last_event_sent_nid, r.room_id, r.room_nid, NULL::INTEGER,
                   NULL::BIGINT, r.write_count, r.state_snapshot_nid, r.latest_event_nids,
                   NULL::BOOLEAN, NULL::BOOLEAN, NULL::BOOLEAN, r.room_version
            FROM rooms AS r WHERE r.room_id = ANY(room_ids);
    END IF;
    RETURN QUERY
        SELECT 1::SMALLINT, e.event_nid, e.event_id, e.room_nid, e.event_type_nid,
               e.event_state_key_nid, e.depth, e.state_snapshot_nid, e.auth_event_nids,
               e.is_outlier, e.is_rejected, e.is_soft_failed, e.rejection_reason
        FROM unnest(wanted_ids) AS w(id) JOIN events AS e ON e.event_id = w.id;
    RETURN QUERY
        SELECT DISTINCT 2::SMALLINT, NULL::BIGINT, b.prev_event_id, NULL::INTEGER,
               NULL::INTEGER, NULL::BIGINT, NULL::BIGINT, NULL::BIGINT, NULL::BYTEA,
               NULL::BOOLEAN, NULL::BOOLEAN, NULL::BOOLEAN, NULL::TEXT
        FROM backward_extremities AS b WHERE b.prev_event_id = ANY(new_ids);
END
$$;

-- Write what the pipeline decided, if what it was decided on still holds (see the top):
-- the rooms' new latest events, last sent event and current state (each room given with
-- the write_count the request read), the events (with reserved NIDs; none may be stored yet)
-- and their JSON, the prev_events edges (to stored events, or to missing ones as backward
-- extremities; with late_count > 0, the edges kept for the new events as backward
-- extremities become previous_events edges), the client transaction IDs, and the output
-- log rows. Returns the output position before the first row (rows are head + 1 ...).
CREATE FUNCTION roomserver_input_write(
    room_nids INTEGER[], room_read_count BIGINT[], room_latest BYTEA[], room_last_sent BIGINT[],
    room_snapshot BIGINT[], late_count INTEGER,
    ev_nid BIGINT[], ev_id TEXT[], ev_room INTEGER[], ev_type INTEGER[], ev_key BIGINT[],
    ev_depth BIGINT[], ev_snapshot BIGINT[], ev_auth BYTEA[], ev_outlier BOOLEAN[],
    ev_rejected BOOLEAN[], ev_soft_failed BOOLEAN[], ev_reason TEXT[], ev_json BYTEA[],
    edge_prev BIGINT[], edge_child BIGINT[],
    missing_prev TEXT[], missing_child BIGINT[], missing_room INTEGER[],
    txn_session BIGINT[], txn_user TEXT[], txn_id TEXT[], txn_event TEXT[],
    output_payloads BYTEA[]
) RETURNS BIGINT LANGUAGE plpgsql VOLATILE SET enable_seqscan = off AS $$
DECLARE
    n BIGINT;
    head BIGINT := 0;
BEGIN
    IF cardinality(room_nids) > 1 THEN  -- lock in room NID order, as prepare does
        PERFORM 1 FROM rooms WHERE rooms.room_nid = ANY(room_nids)
            ORDER BY rooms.room_nid FOR UPDATE;
    END IF;
    UPDATE rooms AS r SET latest_event_nids = u.latest, last_event_sent_nid = u.last_sent,
                          state_snapshot_nid = u.snapshot, write_count = r.write_count + 1
        FROM unnest(room_nids, room_read_count, room_latest, room_last_sent, room_snapshot)
             AS u(room_nid, read_count, latest, last_sent, snapshot)
        WHERE r.room_nid = u.room_nid AND r.write_count = u.read_count;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> cardinality(room_nids) THEN
        RAISE EXCEPTION 'a room changed since the request read it'
            USING ERRCODE = 'serialization_failure';
    END IF;
    -- Statements from here on see what every earlier holder of the room locks committed.
    SELECT count(DISTINCT b.prev_event_id) INTO n
        FROM backward_extremities AS b WHERE b.prev_event_id = ANY(ev_id);
    IF n <> late_count THEN
        RAISE EXCEPTION 'stored events began citing a new event since the request read'
            USING ERRCODE = 'serialization_failure';
    END IF;
    INSERT INTO events (event_nid, event_id, room_nid, event_type_nid, event_state_key_nid,
                        depth, state_snapshot_nid, auth_event_nids, is_outlier, is_rejected,
                        is_soft_failed, rejection_reason)
        SELECT * FROM unnest(ev_nid, ev_id, ev_room, ev_type, ev_key, ev_depth, ev_snapshot,
                             ev_auth, ev_outlier, ev_rejected, ev_soft_failed, ev_reason)
        ON CONFLICT (event_id) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> cardinality(ev_nid) THEN
        RAISE EXCEPTION 'an event of the request was stored since the request read'
            USING ERRCODE = 'serialization_failure';
    END IF;
    INSERT INTO event_json (event_nid, event_json)
        SELECT * FROM unnest(ev_nid, ev_json) ON CONFLICT DO NOTHING;
    IF late_count > 0 THEN
        WITH moved AS (
            DELETE FROM backward_extremities AS b USING unnest(ev_id, ev_nid) AS n(id, nid)
            WHERE b.prev_event_id = n.id RETURNING n.nid AS prev_nid, b.event_nid AS child
        )
        INSERT INTO previous_events (prev_event_nid, event_nid)
            SELECT prev_nid, child FROM moved ON CONFLICT DO NOTHING;
    END IF;
    -- (An empty array skips its statement: most requests have no missing prev events
    -- and no client transaction IDs, and a statement costs even when it inserts nothing.)
    IF cardinality(edge_prev) > 0 THEN
        INSERT INTO previous_events (prev_event_nid, event_nid)
            SELECT * FROM unnest(edge_prev, edge_child) ON CONFLICT DO NOTHING;
    END IF;
    IF cardinality(missing_prev) > 0 THEN
        INSERT INTO backward_extremities (prev_event_id, event_nid, room_nid)
            SELECT * FROM unnest(missing_prev, missing_child, missing_room)
            ON CONFLICT DO NOTHING;
    END IF;
    IF cardinality(txn_session) > 0 THEN
        INSERT INTO transactions (session_id, user_id, transaction_id, event_id)
            SELECT * FROM unnest(txn_session, txn_user, txn_id, txn_event)
            ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> cardinality(txn_session) THEN
            RAISE EXCEPTION 'a client transaction ID of the request was stored since it read'
                USING ERRCODE = 'serialization_failure';
        END IF;
    END IF;
    IF cardinality(output_payloads) > 0 THEN
        -- The output log's lock (roomserver.storage.database.LockKey.OUTPUT_LOG), held to the
        -- commit; the next statement's snapshot is taken after it is granted.
        PERFORM pg_advisory_xact_lock(125822936350722);
        SELECT COALESCE(MAX(position), 0) INTO head FROM output_log;
        INSERT INTO output_log (position, payload)
            SELECT head + p.i, p.payload
            FROM unnest(output_payloads) WITH ORDINALITY AS p(payload, i);
    END IF;
    RETURN head;
END
$$;
