-- simlookup results in ClickHouse.
-- Local files: put the sink's --out folder under the server's user_files path (or use clickhouse-local),
-- and use file(); on S3 replace file('simlookup-demo/…') by
-- s3('https://YOUR-BUCKET.s3.amazonaws.com/simlookup/results/**/*.parquet', 'Parquet').

-- A ReplacingMergeTree keyed on request_id: loading a file twice leaves one row per request
-- after merges, and FINAL (below) shows exactly one at any time. The columns come from the files.
CREATE TABLE IF NOT EXISTS simlookup_results
ENGINE = ReplacingMergeTree(stored_at)
PARTITION BY toYYYYMM(stored_at)
ORDER BY request_id
EMPTY AS
SELECT *, toDate(stored_at, 'UTC') AS dt, toInt32(toHour(stored_at, 'UTC')) AS hour, _path AS source_file
FROM file('simlookup-demo/**/*.parquet', 'Parquet');

-- Idempotent load: run as often as you like (dt/hour are derived from stored_at, which is
-- exactly how the sink chose the folder). For continuous ingestion from S3 use an S3Queue
-- table with a materialized view into simlookup_results: it tracks processed files itself.
INSERT INTO simlookup_results
SELECT *, toDate(stored_at, 'UTC') AS dt, toInt32(toHour(stored_at, 'UTC')) AS hour, _path AS source_file
FROM file('simlookup-demo/**/*.parquet', 'Parquet')
SETTINGS use_hive_partitioning = 0;

-- One row per request_id.
SELECT status, count() AS results FROM simlookup_results FINAL GROUP BY status;

-- Latest state per card.
CREATE OR REPLACE VIEW simlookup_card_latest AS
SELECT iccid, card_status, network, product_code, package_code,
       month_use_flow_mb, month_remain_flow_mb, total_use_flow_mb, remain_flow_mb, data_flow_mb,
       activate_date, package_end_date, expected_end_date, fetched_at, request_id
FROM simlookup_results FINAL
WHERE status = 'ok'
ORDER BY iccid, fetched_at DESC, stored_at DESC
LIMIT 1 BY iccid;
