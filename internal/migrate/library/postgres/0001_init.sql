CREATE TABLE pluginhost_settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE pluginhost_plugins (
    id         text PRIMARY KEY,
    enabled    boolean,
    reason     text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
