//! SASL authentication (KIP-43, KIP-152): the mechanisms offered and the exchanges, as
//! sans-IO state machines. The only identity is the admin: user `kafka.admin_user` with the
//! broker's admin token (`server.admin_token`) as password.

/// A user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
}

impl Mechanism {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Self::Plain),
            _ => None,
        }
    }
}

/// A `kafka.sasl_mechanisms` entry this broker does not implement.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown SASL mechanism {0:?} in kafka.sasl_mechanisms (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
)]
pub struct UnknownMechanism(pub String);

/// The mechanisms offered and the admin's credentials.
#[derive(Debug)]
pub(crate) struct Sasl {
    mechanisms: Vec<Mechanism>,
    admin: Option<Credentials>,
}

/// Why an exchange failed; the message goes to the client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SaslError {
    #[error("authentication failed: invalid user name or password")]
    BadCredentials,
    #[error("malformed SASL message: {0}")]
    Malformed(&'static str),
}

/// What the server answers to one client message.
#[derive(Debug)]
pub(crate) enum Step {
    /// Send this and wait for the client's next message.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send `response` (possibly empty).
    Done {
        user: String,
        admin: bool,
        response: Vec<u8>,
    },
}

/// One authentication in progress.
#[derive(Debug)]
pub(crate) struct Exchange {
    mechanism: Mechanism,
}

impl Sasl {
    pub(crate) fn new(
        mechanisms: &[String],
        admin: Option<Credentials>,
    ) -> Result<Self, UnknownMechanism> {
        let mechanisms = mechanisms
            .iter()
            .map(|m| Mechanism::parse(m.trim()).ok_or_else(|| UnknownMechanism(m.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Self { mechanisms, admin })
    }

    /// Names of the mechanisms offered.
    pub(crate) fn mechanisms(&self) -> Vec<&'static str> {
        self.mechanisms.iter().map(|m| m.name()).collect()
    }

    /// Starts an exchange with `mechanism`, if it is offered.
    pub(crate) fn start(&self, mechanism: &str) -> Option<Exchange> {
        let m = Mechanism::parse(mechanism)?;
        self.mechanisms
            .contains(&m)
            .then_some(Exchange { mechanism: m })
    }

    fn check(&self, user: &str, password: &[u8]) -> Result<bool, SaslError> {
        match &self.admin {
            Some(c) if c.user == user && constant_time_eq(c.password.as_bytes(), password) => {
                Ok(true)
            }
            _ => Err(SaslError::BadCredentials),
        }
    }
}

impl Exchange {
    /// The server's answer to the client's next message.
    pub(crate) fn step(&mut self, sasl: &Sasl, message: &[u8]) -> Result<Step, SaslError> {
        match self.mechanism {
            Mechanism::Plain => {
                // [authzid] NUL authcid NUL passwd (RFC 4616).
                let mut parts = message.splitn(3, |&b| b == 0);
                let (Some(authzid), Some(user), Some(password)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(SaslError::Malformed(
                        "PLAIN needs authzid NUL user NUL password",
                    ));
                };
                let user = std::str::from_utf8(user)
                    .map_err(|_| SaslError::Malformed("user name is not UTF-8"))?;
                if !authzid.is_empty() && authzid != user.as_bytes() {
                    return Err(SaslError::BadCredentials);
                }
                let admin = sasl.check(user, password)?;
                Ok(Step::Done {
                    user: user.to_owned(),
                    admin,
                    response: Vec::new(),
                })
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
