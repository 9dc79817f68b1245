-- roomserver schema 2 (PostgreSQL): the input pipeline's reads and writes as two functions,
-- so that one input request costs four round trips (BEGIN, prepare, write, COMMIT) however
-- many tables it touches. roomserver.storage.tables.input_io calls them; on SQLite, where a
-- statement costs no round trip, the same steps run as separate statements.
--
-- Every lookup in them is by a unique key or an index, and PL/pgSQL keeps each statement's
-- plan for the connection's life: a plan made while a table was small (a new database)
-- would go on scanning it whole as it grows. enable_seqscan = off keeps them index probes.
--
-- Both are PL/pgSQL on purpose: under READ COMMITTED each statement of a function takes a
-- new snapshot, so the lookups of roomserver_input_prepare run AFTER its first statement
-- has been granted the room locks, and see everything the previous holder committed. (One
-- statement with CTEs would read with a snapshot taken before waiting for the locks.)

-- Lock the rooms of a request (in room NID order, so overlapping requests never deadlock),
-- then read what the pipeline needs to decide its events: the stored events it names, the
-- new events that stored ones already cite as prev events (late arrivals), and fresh event
-- NIDs. One row per item, tagged by kind:
--   0: a room       (nid = last_event_sent_nid, id = room_id, room_nid, snapshot_nid,
--                    packed = latest_event_nids, reason = room_version)
--   1: an event     (the events row)
--   2: a late event (id = the event ID)
--   3: a fresh NID  (nid)
CREATE FUNCTION roomserver_input_prepare(room_ids TEXT[], wanted_ids TEXT[], new_ids TEXT[])
RETURNS TABLE (
    kind SMALLINT, nid BIGINT, id TEXT, room_nid INTEGER, type_nid INTEGER,
    state_key_nid BIGINT, depth BIGINT, snapshot_nid BIGINT, packed BYTEA, is_outlier BOOLEAN,
    is_rejected BOOLEAN, is_soft_failed BOOLEAN, reason TEXT
) LANGUAGE plpgsql VOLATILE SET enable_seqscan = off AS $$
BEGIN
    RETURN QUERY
        SELECT 0::SMALLINT, r.last_event_sent_nid, r.room_id, r.room_nid, NULL::INTEGER,
               NULL::BIGINT, NULL::BIGINT, r.state_snapshot_nid, r.latest_event_nids,
               NULL::BOOLEAN, NULL::BOOLEAN, NULL::BOOLEAN, r.room_version
        FROM rooms AS r WHERE r.room_id = ANY(room_ids) ORDER BY r.room_nid FOR UPDATE;
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
    RETURN QUERY
        SELECT 3::SMALLINT, nextval(pg_get_serial_sequence('events', 'event_nid')),
               NULL::TEXT, NULL::INTEGER, NULL::INTEGER, NULL::BIGINT, NULL::BIGINT,
               NULL::BIGINT, NULL::BYTEA, NULL::BOOLEAN, NULL::BOOLEAN, NULL::BOOLEAN, NULL::TEXT
        FROM generate_series(1, cardinality(new_ids));
END
$$;

-- Write what the pipeline decided: the events (with NIDs from prepare, which must be new)
-- and their JSON, the prev_events edges (to stored events, or to missing ones as backward
-- extremities; with cited_before, edges kept for the new events as backward extremities
-- become previous_events edges), the rooms' latest events and current state, and the output
-- log rows. Returns the output position before the first row (rows are head + 1 ...).
CREATE FUNCTION roomserver_input_write(
    ev_nid BIGINT[], ev_id TEXT[], ev_room INTEGER[], ev_type INTEGER[], ev_key BIGINT[],
    ev_depth BIGINT[], ev_snapshot BIGINT[], ev_auth BYTEA[], ev_outlier BOOLEAN[],
    ev_rejected BOOLEAN[], ev_soft_failed BOOLEAN[], ev_reason TEXT[], ev_json BYTEA[],
    cited_before BOOLEAN,
    edge_prev BIGINT[], edge_child BIGINT[],
    missing_prev TEXT[], missing_child BIGINT[], missing_room INTEGER[],
    room_nids INTEGER[], room_latest BYTEA[], room_last_sent BIGINT[], room_snapshot BIGINT[],
    output_payloads BYTEA[]
) RETURNS BIGINT LANGUAGE plpgsql VOLATILE SET enable_seqscan = off AS $$
DECLARE
    stored BIGINT;
    head BIGINT := 0;
BEGIN
    INSERT INTO events (event_nid, event_id, room_nid, event_type_nid, event_state_key_nid,
                        depth, state_snapshot_nid, auth_event_nids, is_outlier, is_rejected,
                        is_soft_failed, rejection_reason)
        SELECT * FROM unnest(ev_nid, ev_id, ev_room, ev_type, ev_key, ev_depth, ev_snapshot,
                             ev_auth, ev_outlier, ev_rejected, ev_soft_failed, ev_reason)
        ON CONFLICT (event_id) DO NOTHING;
    GET DIAGNOSTICS stored = ROW_COUNT;
    IF stored <> cardinality(ev_nid) THEN
        RAISE EXCEPTION 'events given reserved NIDs are already stored'
            USING ERRCODE = 'unique_violation';
    END IF;
    INSERT INTO event_json (event_nid, event_json)
        SELECT * FROM unnest(ev_nid, ev_json) ON CONFLICT DO NOTHING;
    IF cited_before THEN
        WITH moved AS (
            DELETE FROM backward_extremities AS b USING unnest(ev_id, ev_nid) AS n(id, nid)
            WHERE b.prev_event_id = n.id RETURNING n.nid AS prev_nid, b.event_nid AS child
        )
        INSERT INTO previous_events (prev_event_nid, event_nid)
            SELECT prev_nid, child FROM moved ON CONFLICT DO NOTHING;
    END IF;
    INSERT INTO previous_events (prev_event_nid, event_nid)
        SELECT * FROM unnest(edge_prev, edge_child) ON CONFLICT DO NOTHING;
    INSERT INTO backward_extremities (prev_event_id, event_nid, room_nid)
        SELECT * FROM unnest(missing_prev, missing_child, missing_room) ON CONFLICT DO NOTHING;
    UPDATE rooms AS r SET latest_event_nids = u.latest, last_event_sent_nid = u.last_sent,
                          state_snapshot_nid = u.snapshot
        FROM unnest(room_nids, room_latest, room_last_sent, room_snapshot)
             AS u(room_nid, latest, last_sent, snapshot)
        WHERE r.room_nid = u.room_nid;
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
