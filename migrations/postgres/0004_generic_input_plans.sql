-- roomserver schema 4 (PostgreSQL): the input functions plan their statements once.
--
-- Their statements take the functions' arrays as parameters. PL/pgSQL caches a plan per
-- statement, but under the default plan_cache_mode it plans again, at every call, each
-- statement whose generic plan the planner guesses costlier than a custom one, and an
-- unnest() of a parameter array is guessed at 100 rows whatever it holds: the UPDATE of
-- the rooms was planned anew at every write (~0.08 ms of a one-event write's ~0.7 ms,
-- docs/input-bench.md). With seq scans off in these functions every generic plan reads
-- through the indexes, which is what a custom plan chose too.

ALTER FUNCTION roomserver_input_prepare(TEXT[], TEXT[], TEXT[], BOOLEAN)
    SET plan_cache_mode = force_generic_plan;

ALTER FUNCTION roomserver_input_write(
    INTEGER[], BIGINT[], BYTEA[], BIGINT[], BIGINT[], INTEGER, BIGINT[], TEXT[], INTEGER[],
    INTEGER[], BIGINT[], BIGINT[], BIGINT[], BYTEA[], BOOLEAN[], BOOLEAN[], BOOLEAN[], TEXT[],
    BYTEA[], BIGINT[], BIGINT[], TEXT[], BIGINT[], INTEGER[], BIGINT[], TEXT[], TEXT[], TEXT[],
    BYTEA[]
) SET plan_cache_mode = force_generic_plan;
