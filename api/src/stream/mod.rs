//! The team stream (seed 000): `GET /api/v1/teams/{team_id}/stream` over Server-Sent Events.
//!
//! From the bus to a dashboard: the bus hands each event, its SSE frame serialized once, to
//! [`hub`], which fans it out to this process's subscribers of the team; [`handler`] opens a
//! subscription (auth, `hello`, replay by `Last-Event-ID`) and yields its frames, in the
//! format of [`sse`]; [`lean`] writes them to the socket as an HTTP/1.1 chunked body (the
//! path every stream takes where the server reads connections itself), or hyper does, when
//! the request came through the router.

pub mod event;
pub(crate) mod handler;
pub mod hub;
pub mod lean;
pub mod sse;

pub use handler::{TeamStream, open, team_stream};

/// The route, for the router and the lean path alike.
pub const ROUTE: &str = "/api/v1/teams/{team_id}/stream";

/// The (still percent-encoded) team of a request path of [`ROUTE`].
pub fn team_in_path(path: &str) -> Option<&str> {
    let (before, after) = ROUTE.split_once("{team_id}")?;
    let team = path.strip_prefix(before)?.strip_suffix(after)?;
    (!team.is_empty() && !team.contains('/')).then_some(team)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_team_is_read_from_the_route_and_nothing_else() {
        assert_eq!(
            team_in_path("/api/v1/teams/payments/stream"),
            Some("payments")
        );
        assert_eq!(team_in_path("/api/v1/teams/a%2Fb/stream"), Some("a%2Fb"));
        assert_eq!(team_in_path("/api/v1/teams//stream"), None);
        assert_eq!(team_in_path("/api/v1/teams/a/b/stream"), None);
        assert_eq!(team_in_path("/api/v1/teams/payments/streams"), None);
        assert_eq!(team_in_path("/api/v1/bugs"), None);
    }
}
