//! How a keyspace error travels over gRPC and back, classified by the status code, a typed
//! marker in the metadata, and the type of the error behind a failed call, never by the words
//! of a message. Whether a write "certainly did not apply" (so a lease write may be retried
//! at once) must not change when someone rewords a message or a library its errors.

use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::Status;

use super::KeyspaceError;

/// The metadata entry a keyspace error carries its kind in.
pub const ERROR_HEADER: &str = "pgquorum-error";

/// The kinds a caller must tell apart beyond the status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// The node that answered is not (or no longer) the Raft leader: the command was not
    /// proposed.
    NotLeader,
}

impl Marker {
    fn tag(self) -> &'static str {
        match self {
            Marker::NotLeader => "not-leader",
        }
    }

    /// The marker a status carries, if any.
    pub fn of(status: &Status) -> Option<Marker> {
        match status.metadata().get(ERROR_HEADER)?.to_str().ok()? {
            "not-leader" => Some(Marker::NotLeader),
            _ => None,
        }
    }

    fn attach(self, mut status: Status) -> Status {
        status
            .metadata_mut()
            .insert(ERROR_HEADER, MetadataValue::from_static(self.tag()));
        status
    }
}

/// The call failed while connecting (TCP connect, TLS handshake): tonic wraps every failure
/// of its connector in [`tonic::ConnectError`], and a refused connection is an
/// `io::ErrorKind::ConnectionRefused`. Nothing reached the peer, so nothing applied.
pub fn never_sent(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::ConnectError>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            ) {
                return true;
            }
        }
        source = e.source();
    }
    false
}

/// The gRPC status a keyspace error travels as.
pub fn error_to_status(e: &KeyspaceError) -> Status {
    let msg = e.to_string();
    match e {
        // The "not-leader: " words are kept for agents of earlier versions during a rolling
        // upgrade (they read them); this version reads only the marker.
        KeyspaceError::NotLeader => {
            Marker::NotLeader.attach(Status::unavailable(format!("not-leader: {msg}")))
        }
        KeyspaceError::NoLeader { .. } | KeyspaceError::LeaderUnreachable { .. } => Status::unavailable(msg),
        KeyspaceError::Unconfirmed { .. } => Status::deadline_exceeded(msg),
        KeyspaceError::Invalid(_) => Status::invalid_argument(msg),
        KeyspaceError::Stopped(_) => Status::internal(msg),
    }
}

/// The keyspace error a failed call to the node at `addr` means.
pub fn status_to_error(addr: &str, s: Status) -> KeyspaceError {
    let unreachable = |not_sent: bool, detail: String| KeyspaceError::LeaderUnreachable {
        addr: addr.to_string(),
        detail,
        not_sent,
    };
    if Marker::of(&s) == Some(Marker::NotLeader) {
        return KeyspaceError::NotLeader;
    }
    if never_sent(&s) {
        return unreachable(true, crate::grpc::transport::describe(&s));
    }
    match s.code() {
        tonic::Code::Unavailable => unreachable(false, s.message().to_string()),
        tonic::Code::InvalidArgument => KeyspaceError::Invalid(s.message().to_string()),
        // The caller replaces the zero with the time it actually waited.
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => KeyspaceError::Unconfirmed {
            waited: Duration::ZERO,
        },
        _ => unreachable(false, s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn round_trip(e: KeyspaceError) -> KeyspaceError {
        status_to_error("node1:1", error_to_status(&e))
    }

    #[test]
    fn not_leader_travels_as_a_marker() {
        assert_eq!(round_trip(KeyspaceError::NotLeader), KeyspaceError::NotLeader);
        assert!(round_trip(KeyspaceError::NotLeader).certainly_not_applied());
    }

    #[test]
    fn the_words_decide_nothing() {
        // An Unavailable status whose message happens to read like the old text markers.
        for message in [
            "not-leader: this node is no longer the Raft leader",
            "error trying to connect",
        ] {
            let e = status_to_error("node1:1", Status::unavailable(message));
            assert!(
                matches!(e, KeyspaceError::LeaderUnreachable { not_sent: false, .. }),
                "{message}: {e:?}"
            );
            assert!(!e.certainly_not_applied(), "{message}");
        }
    }

    #[test]
    fn other_kinds_by_code() {
        type Want = fn(&KeyspaceError) -> bool;
        let rows: Vec<(KeyspaceError, Want)> = vec![
            (
                KeyspaceError::NoLeader {
                    waited: Duration::ZERO,
                },
                |e| matches!(e, KeyspaceError::LeaderUnreachable { not_sent: false, .. }),
            ),
            (
                KeyspaceError::Unconfirmed {
                    waited: Duration::from_secs(1),
                },
                |e| matches!(e, KeyspaceError::Unconfirmed { .. }),
            ),
            (KeyspaceError::Invalid("bad".into()), |e| {
                matches!(e, KeyspaceError::Invalid(_))
            }),
            (KeyspaceError::Stopped("gone".into()), |e| {
                matches!(e, KeyspaceError::LeaderUnreachable { not_sent: false, .. })
            }),
        ];
        for (sent, want) in rows {
            let got = round_trip(sent.clone());
            assert!(want(&got), "{sent:?} came back as {got:?}");
            assert!(!got.certainly_not_applied(), "{sent:?}");
        }
    }

    #[test]
    fn a_connect_error_in_the_source_chain_was_never_sent() {
        let mut s = Status::unavailable("whatever the library says");
        let io = std::io::Error::other("handshake");
        s.set_source(Arc::new(tonic::ConnectError(Box::new(io))));
        assert!(status_to_error("n:1", s).certainly_not_applied());

        let mut s = Status::unavailable("x");
        s.set_source(Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(never_sent(&s));

        // Reset mid-call: the request may have arrived.
        let mut s = Status::unavailable("x");
        s.set_source(Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(!never_sent(&s));
    }

    #[tokio::test]
    async fn a_real_refused_connection_was_never_sent() {
        // A port nobody listens on: bind one, then close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut client = crate::ctl::connect(&format!("127.0.0.1:{port}")).unwrap();
        let status = client
            .wal_position(crate::grpc::pb::admin::WalPositionRequest {})
            .await
            .unwrap_err();
        assert!(
            never_sent(&status),
            "{}",
            crate::grpc::transport::describe(&status)
        );
        assert!(status_to_error("n:1", status).certainly_not_applied());
    }
}
