-- try(sql): 'ok', or the SQLSTATE and message of the error it raised.
-- Shared by the lifecycle regress files (\i test/sql/include/try.sql, from the top directory); not a test itself.
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
