//! Registered clients, their access tokens (SHA-256 only) and used assertion `jti`s
//! (README "Authentication"). Rows only: what a scope or an assertion means is
//! `crate::auth`'s. Every instance on one database sees the same rows, so a client
//! added, a token revoked or a `jti` used is seen by all of them at once.

use std::convert::Infallible;

use diesel::prelude::*;

use super::db::DbConnection;
use super::schema::{auth_clients as cl, auth_jtis as jt, auth_tokens as tk, resources};
use super::tx::{now_micros, Failure};
use super::{Access, Store, StoreError};

/// A registered client as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = cl)]
pub struct ClientRow {
    pub client_id: String,
    pub role: String,
    pub organization: String,
    /// Allowed scopes, space separated.
    pub scopes: String,
    /// Public keys (JWKS JSON).
    pub jwks: Option<String>,
    /// Argon2 PHC string of the secret.
    pub secret_hash: Option<String>,
    pub created: i64,
}

/// A valid access token: its client and the scopes it grants.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub client: ClientRow,
    pub scopes: String,
    pub expires: i64,
}

/// What the token endpoint stores with a new token.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub token_hash: String,
    pub client_id: String,
    pub scopes: String,
    pub expires: i64,
}

fn err(e: diesel::result::Error) -> StoreError {
    StoreError::from(e)
}

impl Store {
    /// The client `client_id`, read afresh (a `client add` or `remove` takes effect on
    /// the next request).
    pub async fn client(&self, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
        let id = client_id.to_owned();
        self.with_conn(move |conn| {
            cl::table
                .find(&id)
                .select(ClientRow::as_select())
                .first(conn)
                .optional()
                .map_err(err)
        })
        .await
    }

    /// Every registered client, by id.
    pub async fn clients(&self) -> Result<Vec<ClientRow>, StoreError> {
        self.with_conn(|conn| {
            cl::table
                .order(cl::client_id)
                .select(ClientRow::as_select())
                .load(conn)
                .map_err(err)
        })
        .await
    }

    /// Whether any client is registered (then every FHIR request needs a token).
    pub async fn has_clients(&self) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            diesel::select(diesel::dsl::exists(cl::table.select(cl::client_id)))
                .get_result(conn)
                .map_err(err)
        })
        .await
    }

    /// Registers `row`, or replaces the registration of its id (its tokens stay valid
    /// with the new role and scopes narrowed at their next use). Returns true when
    /// the client is new.
    pub async fn put_client(&self, row: ClientRow) -> Result<bool, StoreError> {
        self.transaction(
            Access::system("cli:client"),
            move |tx| -> Result<bool, Failure<Infallible>> {
                let conn: &mut DbConnection = &mut *tx.conn;
                let existed = diesel::delete(cl::table.find(&row.client_id)).execute(conn)? > 0;
                diesel::insert_into(cl::table).values(&row).execute(conn)?;
                Ok(!existed)
            },
        )
        .await
        .map_err(StoreError::from)
    }

    /// Removes a client and revokes its access tokens at once. Returns false when no
    /// such client was registered.
    pub async fn remove_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let id = client_id.to_owned();
        self.transaction(
            Access::system("cli:client"),
            move |tx| -> Result<bool, Failure<Infallible>> {
                let conn: &mut DbConnection = &mut *tx.conn;
                diesel::delete(tk::table.filter(tk::client_id.eq(&id))).execute(conn)?;
                diesel::delete(jt::table.filter(jt::client_id.eq(&id))).execute(conn)?;
                Ok(diesel::delete(cl::table.find(&id)).execute(conn)? > 0)
            },
        )
        .await
        .map_err(StoreError::from)
    }

    /// Whether `Organization/<id>` is stored and not deleted.
    pub async fn organization_exists(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.with_conn(move |conn| {
            diesel::select(diesel::dsl::exists(
                resources::table
                    .filter(resources::resource_type.eq("Organization"))
                    .filter(resources::id.eq(&id))
                    .filter(resources::deleted.eq(false)),
            ))
            .get_result(conn)
            .map_err(err)
        })
        .await
    }

    /// Records the `jti` of a client assertion until `expires`; false when the client
    /// used it before and it has not expired (a replay). Expired `jti`s are purged.
    pub async fn use_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires: i64,
    ) -> Result<bool, StoreError> {
        let (client, jti) = (client_id.to_owned(), jti.to_owned());
        self.transaction(
            Access::system("auth:token"),
            move |tx| -> Result<bool, Failure<Infallible>> {
                let now = now_micros();
                let conn: &mut DbConnection = &mut *tx.conn;
                diesel::delete(jt::table.filter(jt::expires.lt(now))).execute(conn)?;
                let row = (
                    jt::client_id.eq(&client),
                    jt::jti.eq(&jti),
                    jt::expires.eq(expires),
                );
                // Two instances racing with one assertion: the primary key lets one in.
                let inserted = match conn {
                    DbConnection::Postgres(c) => diesel::insert_into(jt::table)
                        .values(row)
                        .on_conflict_do_nothing()
                        .execute(c)?,
                    DbConnection::Sqlite(c) => diesel::insert_or_ignore_into(jt::table)
                        .values(row)
                        .execute(c)?,
                };
                Ok(inserted == 1)
            },
        )
        .await
        .map_err(StoreError::from)
    }

    /// Stores a new access token (its hash); expired tokens are purged.
    pub async fn save_token(&self, token: NewToken) -> Result<(), StoreError> {
        self.transaction(
            Access::system("auth:token"),
            move |tx| -> Result<(), Failure<Infallible>> {
                let conn: &mut DbConnection = &mut *tx.conn;
                diesel::delete(tk::table.filter(tk::expires.lt(now_micros()))).execute(conn)?;
                diesel::insert_into(tk::table)
                    .values((
                        tk::token_hash.eq(&token.token_hash),
                        tk::client_id.eq(&token.client_id),
                        tk::scopes.eq(&token.scopes),
                        tk::expires.eq(token.expires),
                    ))
                    .execute(conn)?;
                Ok(())
            },
        )
        .await
        .map_err(StoreError::from)
    }

    /// The grant of the token with this hash when it is valid at `now`, with its
    /// client as registered now (a removed client's tokens are gone).
    pub async fn token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<TokenGrant>, StoreError> {
        let hash = token_hash.to_owned();
        self.with_conn(move |conn| {
            tk::table
                .inner_join(cl::table)
                .filter(tk::token_hash.eq(&hash))
                .filter(tk::expires.gt(now))
                .select((ClientRow::as_select(), tk::scopes, tk::expires))
                .first::<(ClientRow, String, i64)>(conn)
                .optional()
                .map(|row| {
                    row.map(|(client, scopes, expires)| TokenGrant {
                        client,
                        scopes,
                        expires,
                    })
                })
                .map_err(err)
        })
        .await
    }
}
