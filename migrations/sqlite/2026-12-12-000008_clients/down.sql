DROP TABLE auth_jtis;
DROP TABLE auth_tokens;
DROP TABLE auth_clients;
