CREATE TABLE pluginhost_jobs (
    plugin  TEXT      NOT NULL,
    job     TEXT      NOT NULL,
    period  INTEGER   NOT NULL,
    ran_at  TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    replica TEXT      NOT NULL DEFAULT '',
    PRIMARY KEY (plugin, job)
);
