-- roomserver schema 5 (PostgreSQL): the input write also stores new state snapshots and
-- memberships, so that a request with state events can be written by it alone, the
-- optimistic way (docs/input.md, "Two ways in").
--
-- * New snapshots come with NIDs the service reserved from the table's identity sequence
--   (Storage.reserve_snapshot_nids), so events and room rows of the same call can name
--   them. Only snapshots made of a delta over a stored base are taken. Under the state
--   garbage collector's shared lock (roomserver.storage.database.LockKey.STATE_GC, held to
--   the commit, as every transaction writing state holds it) the write checks that each
--   base is still stored: the service may have built on a base it had cached, which the
--   collector removed since. A base gone, or a state already stored under its hash (its
--   content addresses it), raises serialization_failure and nothing is written: the
--   service then does the request again under the room locks, where the state layer reads
--   its bases in the transaction and finds existing states by hash.
-- * Memberships are upserted as Memberships.upsert does (one row per room and member, the
--   caller keeps the last of a request; a new membership clears forgotten).
--
-- Everything else is schema 3's write, unchanged; the function keeps schema 4's plan mode.

DROP FUNCTION roomserver_input_write(
    INTEGER[], BIGINT[], BYTEA[], BIGINT[], BIGINT[], INTEGER, BIGINT[], TEXT[], INTEGER[],
    INTEGER[], BIGINT[], BIGINT[], BIGINT[], BYTEA[], BOOLEAN[], BOOLEAN[], BOOLEAN[], TEXT[],
    BYTEA[], BIGINT[], BIGINT[], TEXT[], BIGINT[], INTEGER[], BIGINT[], TEXT[], TEXT[], TEXT[],
    BYTEA[]
);

CREATE FUNCTION roomserver_input_write(
    room_nids INTEGER[], room_read_count BIGINT[], room_latest BYTEA[], room_last_sent BIGINT[],
    room_snapshot BIGINT[], late_count INTEGER,
    ev_nid BIGINT[], ev_id TEXT[], ev_room INTEGER[], ev_type INTEGER[], ev_key BIGINT[],
    ev_depth BIGINT[], ev_snapshot BIGINT[], ev_auth BYTEA[], ev_outlier BOOLEAN[],
    ev_rejected BOOLEAN[], ev_soft_failed BOOLEAN[], ev_reason TEXT[], ev_json BYTEA[],
    edge_prev BIGINT[], edge_child BIGINT[],
    missing_prev TEXT[], missing_child BIGINT[], missing_room INTEGER[],
    txn_session BIGINT[], txn_user TEXT[], txn_id TEXT[], txn_event TEXT[],
    output_payloads BYTEA[],
    snap_nid BIGINT[], snap_room INTEGER[], snap_hash BYTEA[], snap_count INTEGER[],
    snap_base BIGINT[], snap_delta BYTEA[],
    member_room INTEGER[], member_target BIGINT[], member_sender BIGINT[],
    member_membership SMALLINT[], member_event BIGINT[]
) RETURNS BIGINT LANGUAGE plpgsql VOLATILE SET enable_seqscan = off
  SET plan_cache_mode = force_generic_plan AS $$
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
    IF cardinality(snap_nid) > 0 THEN
        PERFORM pg_advisory_xact_lock_shared(125822936350723);
        SELECT count(*) INTO n FROM state_snapshots AS s
            WHERE s.state_snapshot_nid = ANY(snap_base) AND s.base_snapshot_nid = 0;
        IF n <> (SELECT count(DISTINCT b) FROM unnest(snap_base) AS b) THEN
            RAISE EXCEPTION 'a state base of the request was collected since it was read'
                USING ERRCODE = 'serialization_failure';
        END IF;
        INSERT INTO state_snapshots (state_snapshot_nid, room_nid, state_hash, entry_count,
                                     base_snapshot_nid, block_nids, delta)
            OVERRIDING SYSTEM VALUE
            SELECT s.nid, s.room, s.hash, s.count, s.base, ''::BYTEA, s.delta
            FROM unnest(snap_nid, snap_room, snap_hash, snap_count, snap_base, snap_delta)
                 AS s(nid, room, hash, count, base, delta)
            ON CONFLICT (room_nid, state_hash) DO NOTHING;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> cardinality(snap_nid) THEN
            RAISE EXCEPTION 'a state of the request is stored already'
                USING ERRCODE = 'serialization_failure';
        END IF;
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
    IF cardinality(member_room) > 0 THEN
        INSERT INTO memberships (room_nid, target_nid, sender_nid, membership, event_nid)
            SELECT * FROM unnest(member_room, member_target, member_sender,
                                 member_membership, member_event)
            ON CONFLICT (room_nid, target_nid) DO UPDATE
            SET sender_nid = excluded.sender_nid, membership = excluded.membership,
                event_nid = excluded.event_nid, forgotten = FALSE;
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
