-- Commands a service has finished handling, so a redelivery (after a lost ack or a crash between effect and
-- ack) is recognised and not applied twice.
CREATE TABLE processed_commands (
    command_id   TEXT        NOT NULL PRIMARY KEY,
    kind         TEXT        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX processed_commands_processed_at ON processed_commands (processed_at);
