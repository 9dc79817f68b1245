-- roomserver schema 4 (SQLite): nothing changes. On PostgreSQL this version makes the input
-- functions plan their statements once; SQLite has no such functions. The version keeps
-- both backends' schema numbers in step.
SELECT 1;
