DROP TABLE subscription_events;
DROP TABLE subscription_state;
