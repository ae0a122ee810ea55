-- simlookup results in Snowflake.
-- Copy the sink's --out folder to s3://YOUR-BUCKET/simlookup/results/ (or an Azure/GCS location),
-- keeping dt=/hour=; replace YOUR-BUCKET and the storage integration.

CREATE FILE FORMAT IF NOT EXISTS simlookup_parquet TYPE = PARQUET USE_LOGICAL_TYPE = TRUE;

CREATE STAGE IF NOT EXISTS simlookup_stage
  URL = 's3://YOUR-BUCKET/simlookup/results/'
  STORAGE_INTEGRATION = YOUR_INTEGRATION
  FILE_FORMAT = simlookup_parquet;

-- The table's columns come from the files themselves (INFER_SCHEMA), plus the partition
-- columns (dt DATE, hour INTEGER, from the path) and the source file.
CREATE TABLE IF NOT EXISTS simlookup_results_staging
  USING TEMPLATE (
    SELECT ARRAY_AGG(OBJECT_CONSTRUCT(*)) WITHIN GROUP (ORDER BY order_id)
    FROM TABLE(INFER_SCHEMA(LOCATION => '@simlookup_stage', FILE_FORMAT => 'simlookup_parquet'))
  );
ALTER TABLE simlookup_results_staging ADD COLUMN IF NOT EXISTS source_file VARCHAR;
CREATE TABLE IF NOT EXISTS simlookup_results LIKE simlookup_results_staging;
ALTER TABLE simlookup_results ADD COLUMN IF NOT EXISTS dt DATE;
ALTER TABLE simlookup_results ADD COLUMN IF NOT EXISTS hour INTEGER;

-- Idempotent load, step 1: COPY skips files it has loaded before (load metadata, 64 days).
-- Only *.parquet names are final; PATTERN makes sure nothing else is read.
COPY INTO simlookup_results_staging
  FROM @simlookup_stage
  PATTERN = '.*dt=[0-9-]+/hour=[0-9]+/part-.*[.]parquet'
  MATCH_BY_COLUMN_NAME = CASE_SENSITIVE
  INCLUDE_METADATA = (source_file = METADATA$FILENAME);

-- Step 2: MERGE on request_id (safe to repeat), deriving the partition columns from the path.
MERGE INTO simlookup_results t
USING (
  SELECT s.*,
         TO_DATE(REGEXP_SUBSTR(source_file, 'dt=([0-9-]+)', 1, 1, 'e')) AS dt,
         TO_NUMBER(REGEXP_SUBSTR(source_file, 'hour=([0-9]+)', 1, 1, 'e')) AS hour
  FROM simlookup_results_staging s
  QUALIFY ROW_NUMBER() OVER (PARTITION BY request_id ORDER BY stored_at DESC, stream_seq DESC) = 1
) s
ON t.request_id = s.request_id
WHEN NOT MATCHED THEN INSERT ALL BY NAME;
TRUNCATE TABLE simlookup_results_staging;

-- Latest state per card.
CREATE OR REPLACE VIEW simlookup_card_latest AS
SELECT iccid, card_status, network, product_code, package_code,
       month_use_flow_mb, month_remain_flow_mb, total_use_flow_mb, remain_flow_mb, data_flow_mb,
       activate_date, package_end_date, expected_end_date, fetched_at, request_id
FROM simlookup_results
WHERE status = 'ok'
QUALIFY ROW_NUMBER() OVER (PARTITION BY iccid ORDER BY fetched_at DESC NULLS LAST, stored_at DESC) = 1;
