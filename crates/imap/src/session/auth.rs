//! LOGIN and AUTHENTICATE PLAIN (RFC 9051 §6.2.2–6.2.3, RFC 4616, RFC 4959 SASL-IR), both
//! through the one [`postkeep_auth::login::Authenticator`] every protocol shares, so its
//! throttling covers them all. Failures never say whether the account exists.

use std::io;

use imap_types::auth::{AuthMechanism, AuthenticateData};
use postkeep_auth::login::LoginError;
use postkeep_imap_proto::framer::{Event, Mode};
use tracing::info;
use zeroize::Zeroizing;

use super::{Reply, Session};

impl Session {
    pub(super) async fn login(&mut self, user: &str, secret: Zeroizing<String>) -> Reply {
        if !self.tls {
            // RFC 9051 §6.2.3 with LOGINDISABLED; RFC 5530 PRIVACYREQUIRED.
            return Reply::no("Use STARTTLS first").code("PRIVACYREQUIRED");
        }
        let ip = self.peer.ip().to_canonical();
        match self.server.auth.login(user, secret, ip).await {
            Ok(account) => {
                info!(account = %account.address, "logged in");
                self.account = Some(account);
                let caps = self.capabilities();
                Reply::ok("Logged in").code(format!("CAPABILITY {caps}"))
            }
            Err(err) => {
                info!(user, error = %err, "login failed");
                match err {
                    LoginError::Invalid => {
                        Reply::no("Authentication failed").code("AUTHENTICATIONFAILED")
                    }
                    LoginError::Throttled(_) => {
                        Reply::no("Too many failed logins; try again later").code("UNAVAILABLE")
                    }
                    LoginError::Unavailable(_) => {
                        Reply::no("Authentication temporarily unavailable").code("UNAVAILABLE")
                    }
                }
            }
        }
    }

    /// `Ok(None)`: the connection ended during the exchange.
    pub(super) async fn authenticate(
        &mut self,
        mechanism: &AuthMechanism<'_>,
        initial: Option<Zeroizing<Vec<u8>>>,
    ) -> io::Result<Option<Reply>> {
        if !self.tls {
            return Ok(Some(
                Reply::no("Use STARTTLS first").code("PRIVACYREQUIRED"),
            ));
        }
        if !matches!(mechanism, AuthMechanism::Plain) {
            return Ok(Some(Reply::no("Unsupported mechanism").code("CANNOT")));
        }
        let message = match initial {
            Some(message) => message,
            None => match self.continuation().await? {
                Some(Some(message)) => message,
                Some(None) => return Ok(Some(Reply::bad("AUTHENTICATE cancelled"))),
                None => return Ok(None),
            },
        };
        let plain = match postkeep_auth::parse_sasl_plain(&message) {
            Ok(plain) => plain,
            Err(_) => return Ok(Some(Reply::bad("Malformed SASL PLAIN message"))),
        };
        // RFC 4616 §2: acting as someone else is not offered.
        if plain
            .authzid
            .as_deref()
            .is_some_and(|z| !z.eq_ignore_ascii_case(&plain.authcid))
        {
            return Ok(Some(
                Reply::no("Authorization identity not permitted").code("AUTHORIZATIONFAILED"),
            ));
        }
        Ok(Some(self.login(&plain.authcid, plain.password).await))
    }

    /// Sends an empty challenge and reads the client's response: `Some(None)` is a cancel.
    async fn continuation(&mut self) -> io::Result<Option<Option<Zeroizing<Vec<u8>>>>> {
        self.out.extend_from_slice(b"+ \r\n");
        self.flush().await?;
        self.framer.set_mode(Mode::AuthenticateData);
        let event = self.next_event().await;
        self.framer.set_mode(Mode::Command);
        Ok(match event? {
            Some(Event::AuthenticateData(AuthenticateData::Continue(secret))) => {
                Some(Some(Zeroizing::new(secret.declassify().to_vec())))
            }
            Some(Event::AuthenticateData(AuthenticateData::Cancel)) => Some(None),
            Some(_) => Some(None),
            None => None,
        })
    }
}
