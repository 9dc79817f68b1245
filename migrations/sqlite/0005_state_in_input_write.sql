-- roomserver schema 5 (SQLite): nothing changes. On PostgreSQL this version lets the input
-- function write state snapshots and memberships; SQLite writes input with the tables' own
-- statements (roomserver.storage.tables.input_io). The version keeps both backends' schema
-- numbers in step.
SELECT 1;
