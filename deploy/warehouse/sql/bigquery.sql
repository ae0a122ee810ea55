-- simlookup results in BigQuery.
-- Copy the sink's --out folder to gs://YOUR-BUCKET/simlookup/results/ (gsutil -m rsync -r, keeping dt=/hour=);
-- replace YOUR-PROJECT.simlookup and YOUR-BUCKET. The partition keys are folder names only (BigQuery
-- requires that), declared here as dt DATE and hour INT64.

-- 1. External table over the files (schema read from the Parquet footers).
CREATE OR REPLACE EXTERNAL TABLE `YOUR-PROJECT.simlookup.results_files`
WITH PARTITION COLUMNS (dt DATE, hour INT64)
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://YOUR-BUCKET/simlookup/results/*'],
  hive_partition_uri_prefix = 'gs://YOUR-BUCKET/simlookup/results',
  require_hive_partition_filter = false
);

-- 2. The native table, partitioned by day and clustered for card lookups.
CREATE TABLE IF NOT EXISTS `YOUR-PROJECT.simlookup.results`
PARTITION BY dt
CLUSTER BY iccid, status
AS SELECT *, CAST(NULL AS STRING) AS source_file
FROM `YOUR-PROJECT.simlookup.results_files` WHERE FALSE;

-- 3. Idempotent load (run it as often as you like, e.g. hourly): MERGE on request_id, so a file
--    loaded twice, or a run repeated, adds nothing. Widen the dt window to backfill.
MERGE `YOUR-PROJECT.simlookup.results` t
USING (
  SELECT * EXCEPT (rn) FROM (
    SELECT f.*, _FILE_NAME AS source_file,
           ROW_NUMBER() OVER (PARTITION BY request_id ORDER BY stored_at DESC, stream_seq DESC) AS rn
    FROM `YOUR-PROJECT.simlookup.results_files` f
    WHERE dt >= DATE_SUB(CURRENT_DATE(), INTERVAL 2 DAY)
  ) WHERE rn = 1
) s
ON t.request_id = s.request_id AND t.dt >= DATE_SUB(CURRENT_DATE(), INTERVAL 3 DAY)
WHEN NOT MATCHED THEN INSERT ROW;

-- 4. Latest state per card.
CREATE OR REPLACE VIEW `YOUR-PROJECT.simlookup.card_latest` AS
SELECT iccid, card_status, network, product_code, package_code,
       month_use_flow_mb, month_remain_flow_mb, total_use_flow_mb, remain_flow_mb, data_flow_mb,
       activate_date, package_end_date, expected_end_date, fetched_at, request_id
FROM `YOUR-PROJECT.simlookup.results`
WHERE status = 'ok'
QUALIFY ROW_NUMBER() OVER (PARTITION BY iccid ORDER BY fetched_at DESC, stored_at DESC) = 1;

-- Alternative without MERGE: bq load with hive partitioning into a staging table, then the MERGE above:
--   bq load --source_format=PARQUET --hive_partitioning_mode=CUSTOM \
--     --hive_partitioning_source_uri_prefix='gs://YOUR-BUCKET/simlookup/results/{dt:DATE}/{hour:INTEGER}' \
--     simlookup.results_staging 'gs://YOUR-BUCKET/simlookup/results/dt=2026-12-03/*'
