-- simlookup results in DuckDB.
-- Run from the folder that holds simlookup-demo/ (the repository root after
-- `go run ./cmd/simlookup demo`):
--   duckdb simlookup.duckdb < deploy/warehouse/sql/duckdb.sql
-- or without the CLI:
--   go -C deploy/warehouse run ./cmd/query -out "$PWD/simlookup-demo" -f sql/duckdb.sql
-- Change './simlookup-demo' to your sink's --out (a local folder, or s3://… with the httpfs extension).

-- Every final file, with the Hive partition columns typed (hour is an INTEGER, not '07')
-- and the file each row came from.
CREATE OR REPLACE VIEW simlookup_files AS
SELECT *
FROM read_parquet('./simlookup-demo/**/*.parquet',
                  hive_partitioning = true,
                  hive_types = {'dt': DATE, 'hour': INTEGER},
                  filename = true);

-- Idempotent load: one row per request_id, however often this runs
-- (a row is only added when its request_id is not in the table yet).
CREATE TABLE IF NOT EXISTS simlookup_results AS
SELECT * FROM simlookup_files LIMIT 0;

INSERT INTO simlookup_results
SELECT f.*
FROM simlookup_files f
WHERE NOT EXISTS (SELECT 1 FROM simlookup_results r WHERE r.request_id = f.request_id)
QUALIFY row_number() OVER (PARTITION BY f.request_id ORDER BY f.stored_at DESC, f.stream_seq DESC) = 1;

-- Latest state per card: the newest successful lookup of each ICCID.
CREATE OR REPLACE VIEW simlookup_card_latest AS
SELECT iccid, card_status, network, product_code, package_code,
       month_use_flow_mb, month_remain_flow_mb, total_use_flow_mb, remain_flow_mb, data_flow_mb,
       activate_date, package_end_date, expected_end_date, fetched_at, request_id
FROM simlookup_results
WHERE status = 'ok'
QUALIFY row_number() OVER (PARTITION BY iccid ORDER BY fetched_at DESC NULLS LAST, stored_at DESC) = 1;

SELECT status, error_kind, count(*) AS results
FROM simlookup_results
GROUP BY ALL
ORDER BY results DESC;

SELECT * FROM simlookup_card_latest ORDER BY iccid LIMIT 20;
