-- Messages received at POST /fhir/$process-message (profiles/README-message-intake.md):
-- one row per message, keyed as FHIR messaging keys a message (the sender's
-- MessageHeader.source.endpoint and MessageHeader.id), so a message delivered again
-- is answered with the response it got the first time. The row of a referral-new
-- message also says where the referral's status messages go (its sender's Endpoint).
CREATE TABLE messages (
    -- MessageHeader.source.endpoint
    source TEXT NOT NULL,
    -- MessageHeader.id
    message_id TEXT NOT NULL,
    -- the message-event code
    event TEXT NOT NULL,
    -- the registered Endpoint the message came from (its id)
    endpoint_id TEXT NOT NULL,
    -- the stored Bundles: the message as received and the response message
    request_bundle TEXT NOT NULL,
    response_bundle TEXT NOT NULL,
    -- the referral (ServiceRequest id) the message was about
    service_request TEXT NOT NULL,
    -- microseconds
    received_at BIGINT NOT NULL,
    PRIMARY KEY (source, message_id)
);
CREATE INDEX messages_referral ON messages (service_request, event);
