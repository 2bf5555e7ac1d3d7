//! Whose fault a proxy error is. Only a backend's own failure before its first response byte
//! (refused or reset connection, garbage instead of a response) counts against it; a client
//! that hangs up or stalls reaches `error_while_proxy` too, and must never take a healthy
//! backend out of the rotation. `client_error` is what the client is told about such an error
//! when the gateway did not decide the answer itself.

use super::ctx::UpstreamLeg;
use crate::error::GatewayError;
use pingora::prelude::*;

/// Stale pooled connections retried on the same backend before it counts as tried.
pub const MAX_STALE_RETRIES: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client side failed: hung up, or could not be read or written in time.
    Downstream,
    /// The backend answered 429: its queue is full.
    Busy,
    /// The backend failed after its response header: the client has seen the answer begin.
    AfterAnswer,
    /// The backend did not answer in time (504; a slow backend is not retried).
    Timeout,
    /// A reused keep-alive connection that the backend had already closed.
    StaleConnection,
    /// The backend itself failed before answering.
    Backend,
}

pub fn blame(e: &Error, leg: &UpstreamLeg, client_reused: bool) -> Fault {
    if leg.busy {
        return Fault::Busy;
    }
    if e.esource() != &ErrorSource::Upstream {
        return Fault::Downstream;
    }
    if leg.responded {
        return Fault::AfterAnswer;
    }
    if matches!(
        e.etype(),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout | ErrorType::ConnectTimedout
    ) {
        return Fault::Timeout;
    }
    if client_reused && leg.stale < MAX_STALE_RETRIES {
        return Fault::StaleConnection;
    }
    Fault::Backend
}

/// The client-facing error for a proxy failure the gateway did not decide itself.
pub fn client_error(e: &Error) -> Option<GatewayError> {
    match e.esource() {
        ErrorSource::Upstream => Some(match e.etype() {
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => GatewayError::BackendTimeout,
            ErrorType::ConnectTimedout
            | ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::ConnectProxyFailure
            | ErrorType::TLSHandshakeFailure => {
                GatewayError::BackendFailed("no backend accepted the connection".into())
            }
            _ => GatewayError::BackendFailed("the backend failed to answer".into()),
        }),
        ErrorSource::Downstream => match e.etype() {
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => None,
            ErrorType::ReadTimedout => Some(GatewayError::BadRequest(
                "the request was not received in time".into(),
            )),
            _ => Some(GatewayError::BadRequest(
                "the request could not be read".into(),
            )),
        },
        _ => Some(GatewayError::Internal("internal error".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(source: ErrorSource, etype: ErrorType) -> Box<Error> {
        let mut e = Error::new(etype);
        e.esource = source;
        e
    }

    #[test]
    fn a_client_that_hangs_up_is_never_the_backends_fault() {
        let leg = UpstreamLeg::default();
        for etype in [
            ErrorType::ConnectionClosed,
            ErrorType::ReadError,
            ErrorType::WriteError,
            ErrorType::ReadTimedout,
        ] {
            for reused in [false, true] {
                assert_eq!(
                    blame(&error(ErrorSource::Downstream, etype.clone()), &leg, reused),
                    Fault::Downstream,
                    "{etype:?}"
                );
            }
        }
        assert_eq!(
            blame(
                &error(ErrorSource::Internal, ErrorType::InternalError),
                &leg,
                false
            ),
            Fault::Downstream
        );
    }

    #[test]
    fn backend_faults() {
        let mut leg = UpstreamLeg::default();
        let reset = error(ErrorSource::Upstream, ErrorType::ConnectionClosed);
        assert_eq!(blame(&reset, &leg, false), Fault::Backend);
        assert_eq!(blame(&reset, &leg, true), Fault::StaleConnection);
        leg.stale = MAX_STALE_RETRIES;
        assert_eq!(blame(&reset, &leg, true), Fault::Backend);
        let slow = error(ErrorSource::Upstream, ErrorType::ReadTimedout);
        assert_eq!(blame(&slow, &leg, false), Fault::Timeout);
        leg.responded = true;
        assert_eq!(blame(&reset, &leg, false), Fault::AfterAnswer);
        leg.busy = true;
        assert_eq!(blame(&reset, &leg, false), Fault::Busy);
    }
}
