-- The transport of an org's Change Data Capture stream (issue 24).
--
--   cdc_transport    auto (the default): the Pub/Sub API, or CometD when the Pub/Sub endpoint
--                    cannot be reached; pubsub or cometd: that one only
--                    (`sfpg org set-cdc NAME on --transport …`);
--   pubsub_endpoint  the Pub/Sub API's host:port (or URL); Salesforce's global endpoint by
--                    default (`sfpg org add --pubsub-endpoint`).
ALTER TABLE sfpg.orgs
    ADD COLUMN cdc_transport text NOT NULL DEFAULT 'auto'
        CHECK (cdc_transport IN ('auto', 'pubsub', 'cometd')),
    ADD COLUMN pubsub_endpoint text NOT NULL DEFAULT 'api.pubsub.salesforce.com:7443';

-- The transport the stream runs on now, and why (for `auto`, why not the other one).
ALTER TABLE sfpg.streams
    ADD COLUMN transport text CHECK (transport IN ('pubsub', 'cometd')),
    ADD COLUMN transport_reason text;

DROP TRIGGER orgs_changed ON sfpg.orgs;
CREATE TRIGGER orgs_changed
    AFTER INSERT OR DELETE OR UPDATE OF rate_requests, rate_period_ms, max_daily_share, enabled,
        batch_size, sealed_credentials, bulk_threshold, cdc_enabled, cdc_transport,
        pubsub_endpoint
    ON sfpg.orgs FOR EACH ROW EXECUTE FUNCTION sfpg.notify_org_changed();
