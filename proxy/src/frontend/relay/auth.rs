//! The relayed authentication exchange: the server checks the client's own credentials,
//! SCRAM included, message by message; the proxy keeps no client password. The client gets
//! a BackendKeyData of the proxy's own, so that its CancelRequest comes to the proxy.

use super::Relay;
use crate::backend::statements::{flush, read_frame};
use crate::error::SessionError;
use crate::net::ProtocolError;
use crate::net::frame::body;
use crate::net::messages::backend::{self as be, BackendKey, TransactionStatus};
use crate::net::messages::encode;
use crate::net::messages::frontend as fe;

/// Authentication requests that the client must answer with one message.
fn expects_client_answer(code: i32) -> bool {
    // 3 cleartext, 5 MD5, 7 GSS, 8 GSS continue, 9 SSPI, 10 SASL, 11 SASL continue.
    matches!(code, 3 | 5 | 7..=11)
}

impl Relay {
    /// Relays the authentication exchange. Returns whether the session is ready for
    /// queries (false: the server refused and has closed).
    pub(super) async fn authenticate(&mut self) -> Result<bool, SessionError> {
        flush(&mut self.server, &mut self.server_out).await?;
        loop {
            let (tag, frame) = read_frame(&mut self.server, &mut self.server_in).await?;
            match tag {
                be::AUTHENTICATION => {
                    let code = be::decode_authentication_code(body(&frame))?;
                    self.client_out.extend_from_slice(&frame);
                    self.flush_client().await?;
                    if expects_client_answer(code) {
                        let (tag, answer) = self.read_client_frame().await?;
                        if tag != fe::PASSWORD {
                            return Err(ProtocolError::ExpectedPassword(char::from(tag)).into());
                        }
                        self.server_out.extend_from_slice(&answer);
                        flush(&mut self.server, &mut self.server_out).await?;
                    }
                }
                be::BACKEND_KEY_DATA => {
                    let upstream = BackendKey::decode(body(&frame))?;
                    let registration = self.shared.cancels.register(upstream);
                    encode::backend_key_data(
                        &mut self.client_out,
                        registration.pid(),
                        registration.secret(),
                    )?;
                    self.conversation
                        .cancelled_by(registration.pid(), registration.signal().clone());
                    self.registration = Some(registration);
                }
                be::ERROR_RESPONSE => {
                    // A refused login: the server closes after this.
                    self.client_out.extend_from_slice(&frame);
                    self.flush_client().await?;
                    return Ok(false);
                }
                be::READY_FOR_QUERY => {
                    let status = TransactionStatus::decode_ready_for_query(body(&frame))?;
                    self.conversation.started(status);
                    self.client_out.extend_from_slice(&frame);
                    self.flush_client().await?;
                    return Ok(true);
                }
                be::PARAMETER_STATUS | be::NOTICE_RESPONSE | be::NEGOTIATE_PROTOCOL_VERSION => {
                    self.client_out.extend_from_slice(&frame);
                }
                other => {
                    return Err(ProtocolError::UnexpectedAtStartup(char::from(other)).into());
                }
            }
        }
    }
}
