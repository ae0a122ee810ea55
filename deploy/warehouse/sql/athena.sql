-- simlookup results in Amazon Athena (Trino-based engine v3) or Trino with the Hive connector.
-- Copy the sink's --out folder to s3://YOUR-BUCKET/simlookup/results/ (e.g. `aws s3 sync`, keeping dt=/hour=),
-- then replace YOUR-BUCKET below. Only *.parquet files are ever final; skip nothing else.
--
-- The column list mirrors schemas/parquet-columns.md (deploy/warehouse's test checks it against the files).
-- Partition projection: no MSCK REPAIR / ADD PARTITION needed; hour is an integer written with two digits.

CREATE EXTERNAL TABLE IF NOT EXISTS simlookup_results_files (
  `request_id`             string,
  `job_id`                 string,
  `lane`                   string,
  `iccid`                  string,
  `iccid_luhn_valid`       boolean,
  `input`                  string,
  `status`                 string,
  `error_kind`             string,
  `error_code`             string,
  `error_message`          string,
  `error_http_status`      int,
  `error_retryable`        boolean,
  `attempts`               int,
  `deliveries`             bigint,
  `request_seq`            bigint,
  `requested_at`           timestamp,
  `fetched_at`             timestamp,
  `completed_at`           timestamp,
  `duration_ms`            bigint,
  `worker`                 string,
  `schema_version`         int,
  `stream_seq`             bigint,
  `stored_at`              timestamp,
  `card_iccid`             string,
  `eid`                    string,
  `imsi`                   string,
  `imei`                   string,
  `activate_date`          timestamp,
  `activate_date_raw`      string,
  `card_status`            string,
  `is_real_name`           bigint,
  `month_remain_flow_mb`   double,
  `month_use_flow_mb`      double,
  `remain_flow_type`       bigint,
  `product_code`           string,
  `package_end_date`       timestamp,
  `package_end_date_raw`   string,
  `data_flow_mb`           double,
  `remain_flow_mb`         double,
  `expected_end_date`      timestamp,
  `expected_end_date_raw`  string,
  `imei_pool_status`       bigint,
  `imei_pool_unlock_count` bigint,
  `is_imei_pool`           bigint,
  `network`                string,
  `total_use_flow_mb`      double,
  `package_code`           string,
  `package_kind`           bigint,
  `remark`                 string,
  `extra_json`             string,
  `raw_json`               string,
  `meta_json`              string,
  `sink_error`             string,
  `event_json`             string
)
PARTITIONED BY (`dt` date, `hour` int)
STORED AS PARQUET
LOCATION 's3://YOUR-BUCKET/simlookup/results/'
TBLPROPERTIES (
  'projection.enabled'        = 'true',
  'projection.dt.type'        = 'date',
  'projection.dt.format'      = 'yyyy-MM-dd',
  'projection.dt.range'       = '2026-01-01,NOW',
  'projection.dt.interval'    = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type'      = 'integer',
  'projection.hour.range'     = '0,23',
  'projection.hour.digits'    = '2',
  'storage.location.template' = 's3://YOUR-BUCKET/simlookup/results/dt=${dt}/hour=${hour}/'
);

-- Idempotent "load": files are immutable and named by their sequence range, so copying a
-- folder again (aws s3 sync) adds nothing. The rare duplicate request_id (a results stream
-- deleted and recreated within the dedupe window) is removed by this view; query it, not the table.
CREATE OR REPLACE VIEW simlookup_results AS
SELECT * FROM (
  SELECT f.*, "$path" AS source_file,
         row_number() OVER (PARTITION BY request_id ORDER BY stored_at DESC, stream_seq DESC) AS rn
  FROM simlookup_results_files f
) WHERE rn = 1;

-- Latest state per card: the newest successful lookup of each ICCID.
CREATE OR REPLACE VIEW simlookup_card_latest AS
SELECT iccid, card_status, network, product_code, package_code,
       month_use_flow_mb, month_remain_flow_mb, total_use_flow_mb, remain_flow_mb, data_flow_mb,
       activate_date, package_end_date, expected_end_date, fetched_at, request_id
FROM (
  SELECT r.*, row_number() OVER (PARTITION BY iccid ORDER BY fetched_at DESC NULLS LAST, stored_at DESC) AS card_rn
  FROM simlookup_results r
  WHERE status = 'ok'
) WHERE card_rn = 1;

-- Prune by partition in every query over a large range:
SELECT status, count(*) AS results
FROM simlookup_results
WHERE dt >= current_date - INTERVAL '7' DAY
GROUP BY status;
