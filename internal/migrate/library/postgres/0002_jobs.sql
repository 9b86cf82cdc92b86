CREATE TABLE pluginhost_jobs (
    plugin  text        NOT NULL,
    job     text        NOT NULL,
    period  bigint      NOT NULL,
    ran_at  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    replica text        NOT NULL DEFAULT '',
    PRIMARY KEY (plugin, job)
);
