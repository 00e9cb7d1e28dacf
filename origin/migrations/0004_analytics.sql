-- Click analytics: raw clicks partitioned by month, and rollups maintained at ingest in the
-- same transaction. Dashboards read only the rollups; raw clicks are kept for CSV export
-- until the retention drops their month.

-- Raw click events, enriched at ingest. Partitions (clicks_YYYY_MM) are created by the
-- origin when a month is first seen and dropped whole when the retention passes them.
-- The event id is made where the visit was served; (id, at) is unique because `at` is part
-- of the event too, so a retried delivery inserts nothing twice.
CREATE TABLE clicks (
    id            TEXT NOT NULL,
    at            TIMESTAMPTZ NOT NULL,
    link_id       BIGINT NOT NULL,
    code          TEXT COLLATE "C" NOT NULL,
    source        TEXT NOT NULL,
    country       TEXT,
    referrer      TEXT,
    referrer_host TEXT NOT NULL,
    user_agent    TEXT,
    device        TEXT NOT NULL,
    browser       TEXT NOT NULL,
    os            TEXT NOT NULL,
    bot           BOOLEAN NOT NULL,
    qr            BOOLEAN NOT NULL,
    head          BOOLEAN NOT NULL,
    visitor       TEXT,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE INDEX clicks_link_at ON clicks (link_id, at);

-- Per link per UTC hour. link_id 0 holds the whole account.
--   clicks:   visits by people, not from a QR code
--   qr_scans: visits by people from a QR code
--   bots:     visits by crawlers, link previews, scripts and HEAD requests (QR or not)
--   uniques:  people first seen that UTC day (for this link) in this hour; the sum over an
--             hour range within one day is that day's unique visitors, exactly
CREATE TABLE link_stats_hourly (
    link_id  BIGINT NOT NULL,
    hour     TIMESTAMPTZ NOT NULL,
    clicks   BIGINT NOT NULL,
    qr_scans BIGINT NOT NULL,
    bots     BIGINT NOT NULL,
    uniques  BIGINT NOT NULL,
    PRIMARY KEY (link_id, hour)
);
CREATE INDEX link_stats_hourly_hour ON link_stats_hourly (hour, link_id);

-- Breakdowns per link per UTC hour: dimension is referrer, country, device, browser or os.
--   hits: visits by people (clicks + QR scans); bots: as above.
CREATE TABLE link_breakdown_hourly (
    link_id   BIGINT NOT NULL,
    dimension TEXT NOT NULL,
    hour      TIMESTAMPTZ NOT NULL,
    value     TEXT NOT NULL,
    hits      BIGINT NOT NULL,
    bots      BIGINT NOT NULL,
    -- Time before dimension: every query reads a time range of one link.
    PRIMARY KEY (link_id, hour, dimension, value)
);

-- The same per UTC day, so that long ranges read a few rows per value: a range is read as
-- whole UTC days from here plus the hours at either end from the hourly table, which keeps
-- it exact in any time zone.
CREATE TABLE link_breakdown_daily (
    link_id   BIGINT NOT NULL,
    dimension TEXT NOT NULL,
    day       DATE NOT NULL,
    value     TEXT NOT NULL,
    hits      BIGINT NOT NULL,
    bots      BIGINT NOT NULL,
    PRIMARY KEY (link_id, day, dimension, value)
);

-- Visitor keys seen per link per UTC day, to count each visitor once a day. Only recent days
-- are needed (late events); older rows are deleted by the origin. The counts live on in
-- link_stats_hourly.uniques.
CREATE TABLE visitors_daily (
    link_id BIGINT NOT NULL,
    day     DATE NOT NULL,
    visitor TEXT NOT NULL,
    PRIMARY KEY (link_id, day, visitor)
);
CREATE INDEX visitors_daily_day ON visitors_daily (day);
