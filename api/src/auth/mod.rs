//! Who is calling, as axum extractors (plus the plain functions the stream's lean path calls):
//!
//! - [`Caller`], from a dashboard JWT (`Authorization: Bearer`) or a session cookie: the
//!   dashboard API.
//! - [`Reporter`], from an `x-api-key` and the browser's `Origin`: the ingest API, widget
//!   info and attachments.

mod api_key;
mod jwks;
mod jwt;
pub mod session;

pub use api_key::{
    KeyCheck, Reporter, authenticate_key, authenticate_presented, check_origin, still_valid,
};
pub use jwks::{Jwks, JwksError};
pub use jwt::{Caller, JwtConfigError, JwtVerifier, http_client, mint_token, teams_of};
pub use session::SessionCheck;
