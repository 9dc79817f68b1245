-- roomserver schema 3 (SQLite): rooms.write_count counts the writes of a room's row (latest
-- events, last sent event, current state). The input write compares it with the count its
-- request read (roomserver.storage.tables.input_io). On PostgreSQL this migration also
-- reshapes the input functions so that a request can be written without an explicit
-- transaction; on SQLite every write holds the database's single write lock, and the input
-- pipeline always takes the locked way.

ALTER TABLE rooms ADD COLUMN write_count INTEGER NOT NULL DEFAULT 0;
