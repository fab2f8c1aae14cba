//! SASL authentication (KIP-43, KIP-152, KIP-84): the mechanisms offered and the exchanges, as
//! sans-IO state machines. [`Exchange::step`] takes the client's bytes and returns the server's
//! answer; the connection carries both over SaslAuthenticate. The only identity is the admin:
//! user `kafka.admin_user` with the broker's admin token (`server.admin_token`) as password.
//!
//! - PLAIN (RFC 4616): one message, `[authzid] NUL user NUL password`.
//! - SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677): client-first, server-first,
//!   client-final, server-final. No channel binding (gs2 flag `n` only), no `m=` mandatory
//!   extensions, and Kafka's `tokenauth=true` (delegation tokens) is refused.
//!
//! What is kept: [`Sasl::new`] derives, once per SCRAM mechanism offered, the salted password
//! (PBKDF2-HMAC, a random 16-byte salt, 4096 iterations) and keeps only StoredKey, ServerKey and
//! the salt. For PLAIN it keeps an HMAC of the password under a key drawn at startup, so the
//! password itself is not held and the comparison is of two fixed-length tags, in constant time.
//!
//! Unknown users take the admin's code path: they get a salt derived from the name under the
//! startup key (the same name gets the same salt every time, like a real user's) and keys no
//! proof can match, so the server-first message does not tell whether the user exists; the
//! exchange fails at the proof, with the error a wrong password gets.
//!
//! Names and passwords are compared as their UTF-8 bytes, without SASLprep, as Kafka's own
//! SCRAM implementation does.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// PBKDF2 iterations for the admin's SCRAM credentials (RFC 7677's minimum, Kafka's default).
const SCRAM_ITERATIONS: u32 = 4096;
/// Length of a SCRAM salt, real or made up for an unknown user.
const SALT_LEN: usize = 16;
/// Random bytes in the server's part of the nonce (24 characters of base64).
const SERVER_NONCE_BYTES: usize = 18;

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

/// Key material: never printed.
#[derive(Clone)]
struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named exactly `name` (case-sensitive, as Kafka clients send it).
    fn parse(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Self::Plain),
            "SCRAM-SHA-256" => Some(Self::ScramSha256),
            "SCRAM-SHA-512" => Some(Self::ScramSha512),
            _ => None,
        }
    }
}

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    /// Output length in bytes.
    fn len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    /// HMAC(key, parts concatenated).
    fn mac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut mac =
                <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Self::Sha256 => run::<Hmac<Sha256>>(key, parts),
            Self::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    /// Domain separator for keys derived per mechanism.
    fn label(self) -> &'static [u8] {
        match self {
            Self::Sha256 => b"SCRAM-SHA-256",
            Self::Sha512 => b"SCRAM-SHA-512",
        }
    }

    /// H(data).
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, iterations) of RFC 5802, i.e. PBKDF2-HMAC. Cost: `iterations` pairs of
    /// hash compressions; milliseconds at 4096 in a release build.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.len()];
        match self {
            Self::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
            Self::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out),
        }
        out
    }
}

/// What the server keeps of a SCRAM credential (RFC 5802 §3): not the password.
#[derive(Debug, Clone)]
struct ScramKeys {
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Secret,
    server_key: Secret,
}

impl ScramKeys {
    /// Derives the keys from the password. Cost: one PBKDF2 of `iterations` rounds.
    fn derive(hash: Hash, password: &[u8], salt: Vec<u8>, iterations: u32) -> Self {
        let salted = hash.salted_password(password, &salt, iterations);
        let client_key = hash.mac(&salted, &[b"Client Key"]);
        Self {
            stored_key: Secret(hash.digest(&client_key)),
            server_key: Secret(hash.mac(&salted, &[b"Server Key"])),
            salt,
            iterations,
        }
    }
}

/// The admin identity, as each offered mechanism needs it.
#[derive(Debug)]
struct Admin {
    user: String,
    /// HMAC-SHA-256 of the password under [`Sasl::key`], if PLAIN is offered.
    plain: Option<Secret>,
    sha256: Option<ScramKeys>,
    sha512: Option<ScramKeys>,
}

/// A `kafka.sasl_mechanisms` entry this broker does not implement.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown SASL mechanism {0:?} in kafka.sasl_mechanisms (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
)]
pub struct UnknownMechanism(pub String);

/// The mechanisms offered and what they need of the admin's credentials.
#[derive(Debug)]
pub(crate) struct Sasl {
    mechanisms: Vec<Mechanism>,
    admin: Option<Admin>,
    /// Drawn at startup: keys the PLAIN tag and unknown users' made-up SCRAM credentials.
    key: Secret,
    /// Iterations announced for SCRAM credentials, real or made up.
    iterations: u32,
    /// The server's part of every SCRAM nonce, fixed; `None` (always, outside tests): random.
    server_nonce: Option<String>,
}

/// Why an exchange failed; the message goes to the client. None says which part of the
/// credentials was wrong.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SaslError {
    // Kafka's own wording (`PlainSaslServer`, `ScramSaslServer`), which tools match on.
    #[error("Authentication failed: Invalid username or password")]
    BadCredentials,
    #[error("malformed SASL message: {0}")]
    Malformed(&'static str),
    #[error("unsupported SASL feature: {0}")]
    Unsupported(&'static str),
    #[error(
        "the authorization id differs from the user name: acting for another user is not supported"
    )]
    Impersonation,
    #[error("SCRAM client-final-message carries a nonce other than the one the server sent")]
    NonceMismatch,
    #[error("SASL exchange already finished: start a new one with SaslHandshake")]
    Finished,
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

/// One authentication in progress. After `Done` or an error it is finished: every further
/// message gets [`SaslError::Finished`].
#[derive(Debug)]
pub(crate) struct Exchange {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Waiting for PLAIN's only message.
    Plain,
    /// Waiting for the SCRAM client-first-message.
    ScramFirst(Hash),
    /// Server-first sent; waiting for the client-final-message.
    ScramFinal(Box<Pending>),
    Finished,
}

/// A SCRAM exchange between server-first and client-final.
#[derive(Debug)]
struct Pending {
    hash: Hash,
    user: String,
    /// Whether `keys` are the admin's (else made up, and the exchange must fail).
    known: bool,
    keys: ScramKeys,
    gs2_header: String,
    /// `client-first-message-bare "," server-first-message`: AuthMessage up to client-final.
    auth_prefix: String,
    /// Client nonce followed by server nonce.
    nonce: String,
}

impl Sasl {
    /// Parses the mechanisms and prepares the admin's credentials for them. Cost: one PBKDF2 of
    /// 4096 iterations per SCRAM mechanism offered; call once at startup, not per connection.
    pub(crate) fn new(
        mechanisms: &[String],
        admin: Option<Credentials>,
    ) -> Result<Self, UnknownMechanism> {
        Self::build(
            mechanisms,
            admin,
            || rand::random::<[u8; SALT_LEN]>().to_vec(),
            SCRAM_ITERATIONS,
            None,
        )
    }

    /// [`Sasl::new`] with a fixed salt, iteration count and server nonce, for test vectors.
    #[cfg(test)]
    pub(crate) fn with_scram_params(
        mechanisms: &[&str],
        admin: Option<Credentials>,
        salt: &[u8],
        iterations: u32,
        server_nonce: &str,
    ) -> Result<Self, UnknownMechanism> {
        let mechanisms: Vec<String> = mechanisms.iter().map(|m| m.to_string()).collect();
        Self::build(
            &mechanisms,
            admin,
            || salt.to_vec(),
            iterations,
            Some(server_nonce.to_owned()),
        )
    }

    fn build(
        mechanisms: &[String],
        admin: Option<Credentials>,
        mut salt: impl FnMut() -> Vec<u8>,
        iterations: u32,
        server_nonce: Option<String>,
    ) -> Result<Self, UnknownMechanism> {
        let mechanisms: Vec<Mechanism> = mechanisms
            .iter()
            .map(|m| Mechanism::parse(m.trim()).ok_or_else(|| UnknownMechanism(m.clone())))
            .collect::<Result<_, _>>()?;
        let key = Secret(rand::random::<[u8; 32]>().to_vec());
        let admin = admin.map(|c| {
            let password = c.password.as_bytes();
            let offered = |m| mechanisms.contains(&m);
            let plain = offered(Mechanism::Plain).then(|| Secret(plain_tag(&key, password)));
            let sha256 = offered(Mechanism::ScramSha256)
                .then(|| ScramKeys::derive(Hash::Sha256, password, salt(), iterations));
            let sha512 = offered(Mechanism::ScramSha512)
                .then(|| ScramKeys::derive(Hash::Sha512, password, salt(), iterations));
            Admin {
                user: c.user,
                plain,
                sha256,
                sha512,
            }
        });
        Ok(Self {
            mechanisms,
            admin,
            key,
            iterations,
            server_nonce,
        })
    }

    /// Names of the mechanisms offered.
    pub(crate) fn mechanisms(&self) -> Vec<&'static str> {
        self.mechanisms.iter().map(|m| m.name()).collect()
    }

    /// Starts an exchange with `mechanism`, if it is offered.
    pub(crate) fn start(&self, mechanism: &str) -> Option<Exchange> {
        let m = Mechanism::parse(mechanism)?;
        let state = match m {
            Mechanism::Plain => State::Plain,
            Mechanism::ScramSha256 => State::ScramFirst(Hash::Sha256),
            Mechanism::ScramSha512 => State::ScramFirst(Hash::Sha512),
        };
        self.mechanisms.contains(&m).then_some(Exchange { state })
    }

    /// Checks a PLAIN user and password: both comparisons always run, in constant time.
    fn check_plain(&self, user: &str, password: &[u8]) -> Result<bool, SaslError> {
        let tag = plain_tag(&self.key, password);
        let (user_ok, password_ok) = match &self.admin {
            Some(a) => (
                constant_time_eq(a.user.as_bytes(), user.as_bytes()),
                a.plain
                    .as_ref()
                    .is_some_and(|expected| constant_time_eq(&expected.0, &tag)),
            ),
            None => (false, false),
        };
        if user_ok & password_ok {
            Ok(true)
        } else {
            Err(SaslError::BadCredentials)
        }
    }

    /// The SCRAM keys for `user`, and whether they are real. The made-up keys are derived for
    /// every user, known or not, so both take the same work.
    fn scram_keys(&self, hash: Hash, user: &str) -> (bool, ScramKeys) {
        let made_up = self.made_up_keys(hash, user);
        let real = self
            .admin
            .as_ref()
            .filter(|a| constant_time_eq(a.user.as_bytes(), user.as_bytes()))
            .and_then(|a| match hash {
                Hash::Sha256 => a.sha256.as_ref(),
                Hash::Sha512 => a.sha512.as_ref(),
            });
        match real {
            Some(keys) => (true, keys.clone()),
            None => (false, made_up),
        }
    }

    /// Credentials for a user that does not exist: salt and keys derived from [`Sasl::key`] and
    /// the name, so the same name gets the same salt every time (a fresh one per attempt would
    /// tell it from a real user) and no proof matches them. Cost: three HMAC-SHA-512.
    fn made_up_keys(&self, hash: Hash, user: &str) -> ScramKeys {
        let derive = |what: &[u8], len: usize| {
            let mut out = Hash::Sha512.mac(
                &self.key.0,
                &[what, b"\0", hash.label(), b"\0", user.as_bytes()],
            );
            out.truncate(len);
            out
        };
        ScramKeys {
            salt: derive(b"salt", SALT_LEN),
            iterations: self.iterations,
            stored_key: Secret(derive(b"stored key", hash.len())),
            server_key: Secret(derive(b"server key", hash.len())),
        }
    }

    /// The server's part of a new nonce: random printable characters without ','.
    fn server_nonce(&self) -> String {
        self.server_nonce
            .clone()
            .unwrap_or_else(|| B64.encode(rand::random::<[u8; SERVER_NONCE_BYTES]>()))
    }
}

impl Exchange {
    /// The server's answer to the client's next message. Cost: a few HMACs; no PBKDF2 (the
    /// salted password was derived at startup).
    pub(crate) fn step(&mut self, sasl: &Sasl, message: &[u8]) -> Result<Step, SaslError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Plain => plain(sasl, message),
            State::ScramFirst(hash) => {
                let (pending, server_first) = scram_first(sasl, hash, message)?;
                self.state = State::ScramFinal(Box::new(pending));
                Ok(Step::Continue(server_first.into_bytes()))
            }
            State::ScramFinal(pending) => scram_final(*pending, message),
            State::Finished => Err(SaslError::Finished),
        }
    }
}

/// PLAIN's only message: `[authzid] NUL authcid NUL passwd` (RFC 4616).
fn plain(sasl: &Sasl, message: &[u8]) -> Result<Step, SaslError> {
    let mut parts = message.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(user), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed(
            "PLAIN needs authzid NUL user NUL password",
        ));
    };
    let user =
        std::str::from_utf8(user).map_err(|_| SaslError::Malformed("user name is not UTF-8"))?;
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(SaslError::Impersonation);
    }
    let admin = sasl.check_plain(user, password)?;
    Ok(Step::Done {
        user: user.to_owned(),
        admin,
        response: Vec::new(),
    })
}

/// Parses the client-first-message and answers with the server-first-message.
fn scram_first(sasl: &Sasl, hash: Hash, message: &[u8]) -> Result<(Pending, String), SaslError> {
    let message = scram_utf8(message)?;
    let first = ClientFirst::parse(message)?;
    if first.authzid.as_ref().is_some_and(|a| *a != first.user) {
        return Err(SaslError::Impersonation);
    }
    let (known, keys) = sasl.scram_keys(hash, &first.user);
    let nonce = format!("{}{}", first.nonce, sasl.server_nonce());
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&keys.salt),
        keys.iterations
    );
    let pending = Pending {
        hash,
        user: first.user,
        known,
        keys,
        gs2_header: first.gs2_header.to_owned(),
        auth_prefix: format!("{},{server_first}", first.bare),
        nonce,
    };
    Ok((pending, server_first))
}

/// Checks the client-final-message's proof and answers with the server-final-message.
fn scram_final(pending: Pending, message: &[u8]) -> Result<Step, SaslError> {
    let message = scram_utf8(message)?;
    // client-final-message = client-final-message-without-proof "," proof; the proof is last.
    let (without_proof, proof) = message.rsplit_once(",p=").ok_or(SaslError::Malformed(
        "client-final-message must end with p=proof",
    ))?;
    let mut attributes = without_proof.split(',');
    let binding =
        attributes
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(SaslError::Malformed(
                "client-final-message must start with c=channel-binding",
            ))?;
    if B64.decode(binding).ok().as_deref() != Some(pending.gs2_header.as_bytes()) {
        return Err(SaslError::Malformed(
            "c= must be the base64 of the gs2 header of the client-first-message (\"biws\" for \"n,,\")",
        ));
    }
    let nonce =
        attributes
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(SaslError::Malformed(
                "client-final-message needs r=nonce after c=",
            ))?;
    // Kafka's server accepts a nonce that *ends with* the one it sent
    // (`ScramSaslServer`: `nonce().endsWith(...)`), and librdkafka relies on it: it sends its
    // own nonce again in front of the server's (client nonce + combined nonce). The proof is
    // over the message as the client sent it, so it still binds whatever was sent.
    if !nonce.ends_with(&pending.nonce) {
        return Err(SaslError::NonceMismatch);
    }
    // Extensions between the nonce and the proof are well-formed or refused, else ignored.
    for extension in attributes {
        parse_extension(extension)?;
    }
    let proof = B64
        .decode(proof)
        .map_err(|_| SaslError::Malformed("p= proof is not base64"))?;
    let hash = pending.hash;
    if proof.len() != hash.len() {
        return Err(SaslError::Malformed(
            "p= proof is not as long as the mechanism's hash",
        ));
    }
    let auth_message = format!("{},{without_proof}", pending.auth_prefix);
    let keys = &pending.keys;
    // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); it is right if H(ClientKey)
    // is StoredKey.
    let client_signature = hash.mac(&keys.stored_key.0, &[auth_message.as_bytes()]);
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(p, s)| p ^ s)
        .collect();
    let proof_ok = constant_time_eq(&hash.digest(&client_key), &keys.stored_key.0);
    if !(proof_ok & pending.known) {
        return Err(SaslError::BadCredentials);
    }
    let server_signature = hash.mac(&keys.server_key.0, &[auth_message.as_bytes()]);
    Ok(Step::Done {
        user: pending.user,
        admin: true,
        response: format!("v={}", B64.encode(server_signature)).into_bytes(),
    })
}

/// A parsed client-first-message.
#[derive(Debug)]
struct ClientFirst<'a> {
    /// `n,` authzid `,`, as sent (the client-final's `c=` is its base64).
    gs2_header: &'a str,
    authzid: Option<String>,
    /// The unescaped user name.
    user: String,
    nonce: &'a str,
    /// client-first-message-bare: what AuthMessage starts with.
    bare: &'a str,
}

impl<'a> ClientFirst<'a> {
    /// `gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username "," nonce ["," extensions]`
    /// (RFC 5802 §7), with `n` the only flag accepted.
    fn parse(message: &'a str) -> Result<Self, SaslError> {
        let (flag, rest) = message.split_once(',').ok_or(SaslError::Malformed(
            "client-first-message must start with the gs2 header \"n,,\"",
        ))?;
        match flag {
            "n" => {}
            "y" => {
                return Err(SaslError::Unsupported(
                    "channel binding (gs2 flag \"y\"): only \"n\" is accepted",
                ));
            }
            f if f.starts_with("p=") => {
                return Err(SaslError::Unsupported(
                    "channel binding (gs2 flag \"p=\"): SCRAM-*-PLUS is not offered",
                ));
            }
            _ => {
                return Err(SaslError::Malformed(
                    "gs2 channel-binding flag must be \"n\"",
                ));
            }
        }
        let (authzid, bare) = rest.split_once(',').ok_or(SaslError::Malformed(
            "gs2 header must end with \",\" after the optional a=authzid",
        ))?;
        let authzid = match authzid {
            "" => None,
            a => Some(decode_saslname(
                a.strip_prefix("a=")
                    .ok_or(SaslError::Malformed("gs2 authzid must be a=name"))?,
            )?),
        };
        let gs2_header = &message[..message.len() - bare.len()];
        let mut attributes = bare.split(',');
        let user = attributes.next().unwrap_or_default();
        if user.starts_with("m=") {
            return Err(SaslError::Unsupported("mandatory SCRAM extension m="));
        }
        let user = decode_saslname(user.strip_prefix("n=").ok_or(SaslError::Malformed(
            "client-first-message-bare must start with n=user",
        ))?)?;
        let nonce =
            attributes
                .next()
                .and_then(|a| a.strip_prefix("r="))
                .ok_or(SaslError::Malformed(
                    "client-first-message needs r=nonce after the user name",
                ))?;
        if nonce.is_empty() || !nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(SaslError::Malformed(
                "nonce must be printable ASCII, not empty",
            ));
        }
        for extension in attributes {
            let (key, value) = parse_extension(extension)?;
            // Kafka's delegation tokens (KIP-48): `Boolean.parseBoolean`, so any case.
            if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
                return Err(SaslError::Unsupported(
                    "delegation-token authentication (tokenauth=true)",
                ));
            }
        }
        Ok(Self {
            gs2_header,
            authzid,
            user,
            nonce,
            bare,
        })
    }
}

/// A SCRAM extension `key=value`: key ASCII letters and digits, value anything but ','.
fn parse_extension(extension: &str) -> Result<(&str, &str), SaslError> {
    extension
        .split_once('=')
        .filter(|(key, _)| !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric()))
        .ok_or(SaslError::Malformed("SCRAM extension must be key=value"))
}

/// A SCRAM `saslname`: UTF-8 without NUL, ',' written `=2C` and '=' written `=3D`.
fn decode_saslname(name: &str) -> Result<String, SaslError> {
    if name.is_empty() {
        return Err(SaslError::Malformed("SCRAM user name is empty"));
    }
    if name.contains('\0') {
        return Err(SaslError::Malformed("SCRAM user name contains NUL"));
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let escaped = &rest[i..];
        if escaped.starts_with("=2C") {
            out.push(',');
        } else if escaped.starts_with("=3D") {
            out.push('=');
        } else {
            return Err(SaslError::Malformed(
                "SCRAM user name: '=' must be written =3D and ',' =2C",
            ));
        }
        rest = &escaped[3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn scram_utf8(message: &[u8]) -> Result<&str, SaslError> {
    std::str::from_utf8(message).map_err(|_| SaslError::Malformed("SCRAM message is not UTF-8"))
}

/// The PLAIN tag of `password`: fixed length, so comparing tags says nothing of its length.
fn plain_tag(key: &Secret, password: &[u8]) -> Vec<u8> {
    Hash::Sha256.mac(&key.0, &[b"PLAIN\0", password])
}

/// Equality whose time depends on the lengths only, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::LazyLock;

    fn admin(user: &str, password: &str) -> Option<Credentials> {
        Some(Credentials {
            user: user.into(),
            password: password.into(),
        })
    }

    fn sasl(mechanisms: &[&str], user: &str, password: &str) -> Sasl {
        let mechanisms: Vec<String> = mechanisms.iter().map(|m| m.to_string()).collect();
        Sasl::new(&mechanisms, admin(user, password)).unwrap()
    }

    fn step(x: &mut Exchange, sasl: &Sasl, message: &str) -> Result<Step, SaslError> {
        x.step(sasl, message.as_bytes())
    }

    fn continued(step: Result<Step, SaslError>) -> String {
        match step {
            Ok(Step::Continue(m)) => String::from_utf8(m).unwrap(),
            other => panic!("expected Continue, got {other:?}"),
        }
    }

    /// The RFC 5802 SCRAM client, written against the hash crates directly (not the server's
    /// helpers), for SHA-256 and SHA-512.
    struct Client {
        mechanism: Mechanism,
        gs2_header: String,
        bare: String,
        nonce: String,
    }

    impl Client {
        fn new(mechanism: Mechanism, user: &str, authzid: Option<&str>, nonce: &str) -> Self {
            let escape = |s: &str| s.replace('=', "=3D").replace(',', "=2C");
            Self {
                mechanism,
                gs2_header: format!(
                    "n,{},",
                    authzid
                        .map(|a| format!("a={}", escape(a)))
                        .unwrap_or_default()
                ),
                bare: format!("n={},r={nonce}", escape(user)),
                nonce: nonce.into(),
            }
        }

        fn first(&self) -> String {
            format!("{}{}", self.gs2_header, self.bare)
        }

        fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
            match self.mechanism {
                Mechanism::ScramSha256 => {
                    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Mechanism::ScramSha512 => {
                    let mut m = <Hmac<Sha512> as KeyInit>::new_from_slice(key).unwrap();
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Mechanism::Plain => unreachable!("not SCRAM"),
            }
        }

        /// The client-final-message for `server_first`, and the server-final it expects.
        fn last(&self, password: &str, server_first: &str) -> (String, String) {
            self.last_with(password, server_first, false)
        }

        /// [`last`](Self::last); with `librdkafka`, the nonce sent back is the client's own
        /// followed by the server's whole nonce, as librdkafka builds it.
        fn last_with(
            &self,
            password: &str,
            server_first: &str,
            librdkafka: bool,
        ) -> (String, String) {
            let mut fields = server_first.split(',');
            let combined = fields.next().unwrap().strip_prefix("r=").unwrap();
            let echoed = format!("{}{combined}", self.nonce);
            let nonce = if librdkafka {
                echoed.as_str()
            } else {
                combined
            };
            assert!(
                combined.starts_with(&self.nonce),
                "server nonce extends ours"
            );
            assert!(
                combined.len() > self.nonce.len(),
                "server added a nonce of its own"
            );
            let salt = B64
                .decode(fields.next().unwrap().strip_prefix("s=").unwrap())
                .unwrap();
            let iterations: u32 = fields
                .next()
                .unwrap()
                .strip_prefix("i=")
                .unwrap()
                .parse()
                .unwrap();
            let mut salted = vec![
                0;
                if self.mechanism == Mechanism::ScramSha256 {
                    32
                } else {
                    64
                }
            ];
            match self.mechanism {
                Mechanism::ScramSha256 => pbkdf2::pbkdf2_hmac::<Sha256>(
                    password.as_bytes(),
                    &salt,
                    iterations,
                    &mut salted,
                ),
                _ => pbkdf2::pbkdf2_hmac::<Sha512>(
                    password.as_bytes(),
                    &salt,
                    iterations,
                    &mut salted,
                ),
            }
            let client_key = self.hmac(&salted, b"Client Key");
            let stored_key = match self.mechanism {
                Mechanism::ScramSha256 => Sha256::digest(&client_key).to_vec(),
                _ => Sha512::digest(&client_key).to_vec(),
            };
            let without_proof = format!("c={},r={nonce}", B64.encode(&self.gs2_header));
            let auth = format!("{},{server_first},{without_proof}", self.bare);
            let signature = self.hmac(&stored_key, auth.as_bytes());
            let proof: Vec<u8> = client_key
                .iter()
                .zip(&signature)
                .map(|(k, s)| k ^ s)
                .collect();
            let server_key = self.hmac(&salted, b"Server Key");
            let server_signature = self.hmac(&server_key, auth.as_bytes());
            (
                format!("{without_proof},p={}", B64.encode(proof)),
                format!("v={}", B64.encode(server_signature)),
            )
        }
    }

    /// A full exchange with `client`; `Ok` with the server-final-message checked.
    fn exchange(sasl: &Sasl, client: &Client, password: &str) -> Result<String, SaslError> {
        let mut x = sasl.start(client.mechanism.name()).unwrap();
        let server_first = continued(step(&mut x, sasl, &client.first()));
        let (last, expected) = client.last(password, &server_first);
        match step(&mut x, sasl, &last)? {
            Step::Done {
                user,
                admin,
                response,
            } => {
                assert!(admin);
                assert_eq!(String::from_utf8(response).unwrap(), expected);
                Ok(user)
            }
            other => panic!("expected Done, got {other:?}"),
        }
    }

    const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

    fn rfc_sasl(mechanism: &str) -> Sasl {
        Sasl::with_scram_params(
            &[mechanism],
            admin("user", "pencil"),
            &B64.decode(RFC_SALT).unwrap(),
            4096,
            RFC_SERVER_NONCE,
        )
        .unwrap()
    }

    /// Runs a fixed exchange: client-first, expected server-first, client-final, expected
    /// server-final.
    fn vector(sasl: &Sasl, mechanism: &str, client_final: &str, server_final: &str) {
        let mut x = sasl.start(mechanism).unwrap();
        let server_first = continued(step(
            &mut x,
            sasl,
            &format!("n,,n=user,r={RFC_CLIENT_NONCE}"),
        ));
        assert_eq!(
            server_first,
            format!("r={RFC_CLIENT_NONCE}{RFC_SERVER_NONCE},s={RFC_SALT},i=4096")
        );
        match step(&mut x, sasl, client_final).unwrap() {
            Step::Done {
                user,
                admin,
                response,
            } => {
                assert_eq!(user, "user");
                assert!(admin);
                assert_eq!(String::from_utf8(response).unwrap(), server_final);
            }
            other => panic!("expected Done, got {other:?}"),
        }
    }

    #[test]
    fn scram_sha256_rfc7677_vector() {
        vector(
            &rfc_sasl("SCRAM-SHA-256"),
            "SCRAM-SHA-256",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        );
    }

    /// RFC 7677's inputs under SHA-512; proof and signature computed with Python's hashlib and
    /// hmac (which reproduce the SHA-256 vector above).
    #[test]
    fn scram_sha512_vector_from_an_independent_implementation() {
        vector(
            &rfc_sasl("SCRAM-SHA-512"),
            "SCRAM-SHA-512",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ==",
            "v=ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw==",
        );
    }

    #[test]
    fn scram_sha512_full_exchange_with_escaped_name_and_authzid() {
        let user = "ad=min,ops";
        let s = sasl(&["SCRAM-SHA-512"], user, "s3cret token");
        let client = Client::new(
            Mechanism::ScramSha512,
            user,
            None,
            "fyko+d2lbbFgONRv9qkxdawL",
        );
        assert_eq!(
            client.first(),
            "n,,n=ad=3Dmin=2Cops,r=fyko+d2lbbFgONRv9qkxdawL"
        );
        assert_eq!(exchange(&s, &client, "s3cret token").unwrap(), user);
        // authzid equal to the user: accepted; c= is then the base64 of "n,a=...,", not biws.
        let client = Client::new(Mechanism::ScramSha512, user, Some(user), "nonce2");
        assert_eq!(exchange(&s, &client, "s3cret token").unwrap(), user);
    }

    #[test]
    fn librdkafka_echoing_its_nonce_before_the_servers_authenticates() {
        // librdkafka sends r=<client nonce><client nonce + server nonce>; Kafka accepts a nonce
        // ending with the one it sent, and so does this broker.
        let s = sasl(&["SCRAM-SHA-256", "SCRAM-SHA-512"], "admin", "tok");
        for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            let client = Client::new(mechanism, "admin", None, "rdkafkanonce");
            let mut x = s.start(mechanism.name()).unwrap();
            let server_first = continued(step(&mut x, &s, &client.first()));
            let (last, expected) = client.last_with("tok", &server_first, true);
            match step(&mut x, &s, &last) {
                Ok(Step::Done { user, response, .. }) => {
                    assert_eq!(user, "admin");
                    assert_eq!(String::from_utf8(response).unwrap(), expected);
                }
                other => panic!("{mechanism:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn scram_sha256_full_exchange_and_fresh_server_nonces() {
        let s = sasl(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], "admin", "tok");
        let client = Client::new(Mechanism::ScramSha256, "admin", None, "abc");
        assert_eq!(exchange(&s, &client, "tok").unwrap(), "admin");
        let first = |s: &Sasl| {
            continued(step(
                &mut s.start("SCRAM-SHA-256").unwrap(),
                s,
                "n,,n=admin,r=abc",
            ))
        };
        let (a, b) = (first(&s), first(&s));
        assert_ne!(a, b, "each exchange draws a new server nonce");
        let salt = |m: &str| m.split(',').nth(1).unwrap().to_owned();
        assert_eq!(
            salt(&a),
            salt(&b),
            "the stored salt is announced every time"
        );
        // The SHA-512 credential has a salt of its own.
        let first512 = continued(step(
            &mut s.start("SCRAM-SHA-512").unwrap(),
            &s,
            "n,,n=admin,r=abc",
        ));
        assert_ne!(salt(&first512), salt(&a));
    }

    #[test]
    fn scram_wrong_password_fails_at_the_proof() {
        let s = sasl(&["SCRAM-SHA-512"], "admin", "right");
        let client = Client::new(Mechanism::ScramSha512, "admin", None, "n0nce");
        let e = exchange(&s, &client, "wrong").unwrap_err();
        assert!(matches!(e, SaslError::BadCredentials), "{e:?}");
        assert_eq!(
            e.to_string(),
            "Authentication failed: Invalid username or password"
        );
    }

    #[test]
    fn scram_unknown_user_looks_like_a_known_one_and_fails_at_the_proof() {
        let s = sasl(&["SCRAM-SHA-256"], "admin", "tok");
        let first = |user: &str| {
            continued(step(
                &mut s.start("SCRAM-SHA-256").unwrap(),
                &s,
                &format!("n,,n={user},r=abc"),
            ))
        };
        let shape = |m: &str| {
            let f: Vec<&str> = m.split(',').collect();
            assert_eq!(f.len(), 3);
            assert_eq!(
                B64.decode(f[1].strip_prefix("s=").unwrap()).unwrap().len(),
                SALT_LEN
            );
            (f[1].to_owned(), f[2].to_owned())
        };
        let (known_salt, known_iterations) = shape(&first("admin"));
        let (ghost_salt, ghost_iterations) = shape(&first("ghost"));
        assert_eq!(known_iterations, ghost_iterations);
        assert_eq!(ghost_iterations, "i=4096");
        assert_ne!(known_salt, ghost_salt);
        assert_eq!(
            shape(&first("ghost")).0,
            ghost_salt,
            "an unknown user's salt is stable"
        );
        assert_ne!(
            shape(&first("ghost2")).0,
            ghost_salt,
            "and differs between names"
        );
        // With the admin's password, the unknown user still fails, with the same error.
        for password in ["tok", "other"] {
            let client = Client::new(Mechanism::ScramSha256, "ghost", None, "abc");
            let e = exchange(&s, &client, password).unwrap_err();
            assert!(matches!(e, SaslError::BadCredentials), "{e:?}");
        }
        // No admin configured at all: every user is unknown.
        let none = Sasl::new(&["SCRAM-SHA-256".into()], None).unwrap();
        let client = Client::new(Mechanism::ScramSha256, "admin", None, "abc");
        assert!(matches!(
            exchange(&none, &client, "tok"),
            Err(SaslError::BadCredentials)
        ));
    }

    #[test]
    fn scram_wrong_nonce_or_binding_or_proof_shape_is_refused() {
        let s = rfc_sasl("SCRAM-SHA-256");
        let client = Client::new(Mechanism::ScramSha256, "user", None, RFC_CLIENT_NONCE);
        let attempt = |last: &str| {
            let mut x = s.start("SCRAM-SHA-256").unwrap();
            continued(step(&mut x, &s, &client.first()));
            let r = step(&mut x, &s, last);
            assert!(matches!(step(&mut x, &s, last), Err(SaslError::Finished)));
            r
        };
        let server_first = format!("r={RFC_CLIENT_NONCE}{RFC_SERVER_NONCE},s={RFC_SALT},i=4096");
        let (good, _) = client.last("pencil", &server_first);
        let proof = good.rsplit_once(",p=").unwrap().1;
        // The client's own nonce only, or a different server part.
        for nonce in [
            RFC_CLIENT_NONCE.to_owned(),
            format!("{RFC_CLIENT_NONCE}xyz"),
        ] {
            let e = attempt(&format!("c=biws,r={nonce},p={proof}")).unwrap_err();
            assert!(matches!(e, SaslError::NonceMismatch), "{e:?}");
        }
        let nonce = format!("{RFC_CLIENT_NONCE}{RFC_SERVER_NONCE}");
        for (last, what) in [
            (format!("c=eSws,r={nonce},p={proof}"), "c= is base64 of y,,"),
            (format!("c=***,r={nonce},p={proof}"), "c= not base64"),
            (format!("r={nonce},p={proof}"), "no c="),
            (format!("c=biws,p={proof}"), "no r="),
            (format!("c=biws,r={nonce}"), "no p="),
            (format!("c=biws,r={nonce},p=%%%"), "p= not base64"),
            (format!("c=biws,r={nonce},p=AAAA"), "p= too short"),
            (format!("c=biws,r={nonce},p={proof},x=1"), "p= not last"),
            (
                format!("c=biws,r={nonce},=1,p={proof}"),
                "extension without key",
            ),
        ] {
            let e = attempt(&last).unwrap_err();
            assert!(matches!(e, SaslError::Malformed(_)), "{what}: {e:?}");
        }
        // A flipped proof bit is a wrong password, not a malformed message.
        let mut bad = B64.decode(proof).unwrap();
        bad[0] ^= 1;
        let e = attempt(&format!("c=biws,r={nonce},p={}", B64.encode(bad))).unwrap_err();
        assert!(matches!(e, SaslError::BadCredentials), "{e:?}");
        // An extension before the proof is ignored only if the proof covers it (it is part of
        // AuthMessage): here it does not.
        let e = attempt(&format!("c=biws,r={nonce},x=1,p={proof}")).unwrap_err();
        assert!(matches!(e, SaslError::BadCredentials), "{e:?}");
        assert!(attempt(&good).is_ok());
    }

    #[test]
    fn scram_malformed_or_unsupported_client_first_is_refused() {
        let s = sasl(&["SCRAM-SHA-256"], "admin", "tok");
        let first = |m: &[u8]| s.start("SCRAM-SHA-256").unwrap().step(&s, m);
        for (m, what) in [
            (&b""[..], "empty"),
            (b"n", "no comma"),
            (b"n,", "no second comma"),
            (b"x,,n=admin,r=abc", "bad flag"),
            (b"n,,n=admin", "no nonce"),
            (b"n,,n=admin,r=", "empty nonce"),
            (b"n,,n=admin,r=ab\x7fc", "nonce not printable"),
            (b"n,,r=abc,n=admin", "fields out of order"),
            (b"n,,n=,r=abc", "empty user"),
            (b"n,,n=ad=min,r=abc", "bad escape"),
            (b"n,,n=ad=2,r=abc", "short escape"),
            (b"n,,n=ad\0min,r=abc", "NUL in name"),
            (b"n,,n=admin,r=abc,bad", "extension without ="),
            (b"n,x=admin,n=admin,r=abc", "authzid without a="),
            (b"n,a=,n=admin,r=abc", "empty authzid name"),
            (b"n,,n=\xff,r=abc", "not UTF-8"),
        ] {
            let e = first(m).unwrap_err();
            assert!(matches!(e, SaslError::Malformed(_)), "{what}: {e:?}");
        }
        for m in [
            &b"y,,n=admin,r=abc"[..],
            b"p=tls-unique,,n=admin,r=abc",
            b"n,,m=ext,n=admin,r=abc",
            b"n,,n=admin,r=abc,tokenauth=true",
            b"n,,n=admin,r=abc,tokenauth=TRUE",
        ] {
            let e = first(m).unwrap_err();
            assert!(matches!(e, SaslError::Unsupported(_)), "{m:?}: {e:?}");
        }
        let e = first(b"n,a=root,n=admin,r=abc").unwrap_err();
        assert!(matches!(e, SaslError::Impersonation), "{e:?}");
        // Other Kafka extensions are accepted (and covered by the proof).
        assert!(matches!(
            first(b"n,,n=admin,r=abc,tokenauth=false,foo=bar"),
            Ok(Step::Continue(_))
        ));
    }

    #[test]
    fn messages_after_done_or_failure_are_refused() {
        let s = sasl(&["PLAIN", "SCRAM-SHA-256"], "admin", "tok");
        let mut x = s.start("PLAIN").unwrap();
        assert!(matches!(x.step(&s, b"\0admin\0tok"), Ok(Step::Done { .. })));
        assert!(matches!(
            x.step(&s, b"\0admin\0tok"),
            Err(SaslError::Finished)
        ));

        let client = Client::new(Mechanism::ScramSha256, "admin", None, "abc");
        let mut x = s.start("SCRAM-SHA-256").unwrap();
        let server_first = continued(step(&mut x, &s, &client.first()));
        let (last, _) = client.last("tok", &server_first);
        assert!(matches!(step(&mut x, &s, &last), Ok(Step::Done { .. })));
        for m in [client.first(), last] {
            assert!(matches!(step(&mut x, &s, &m), Err(SaslError::Finished)));
        }

        let mut x = s.start("SCRAM-SHA-256").unwrap();
        assert!(step(&mut x, &s, "garbage").is_err());
        assert!(matches!(
            step(&mut x, &s, &client.first()),
            Err(SaslError::Finished)
        ));
    }

    #[test]
    fn plain_cases() {
        let s = sasl(&["PLAIN"], "admin", "tok");
        let plain = |m: &[u8]| s.start("PLAIN").unwrap().step(&s, m);
        for m in [&b"\0admin\0tok"[..], b"admin\0admin\0tok"] {
            match plain(m).unwrap() {
                Step::Done {
                    user,
                    admin,
                    response,
                } => {
                    assert_eq!(user, "admin");
                    assert!(admin);
                    assert!(response.is_empty());
                }
                other => panic!("{other:?}"),
            }
        }
        for m in [
            &b"\0admin\0wrong"[..],
            b"\0admin\0",
            b"\0admin\0tok\0",
            b"\0ghost\0tok",
            b"\0\0tok",
        ] {
            let e = plain(m).unwrap_err();
            assert!(matches!(e, SaslError::BadCredentials), "{m:?}: {e:?}");
            assert!(!e.to_string().contains("password is") && !e.to_string().contains("unknown"));
        }
        assert!(matches!(
            plain(b"root\0admin\0tok"),
            Err(SaslError::Impersonation)
        ));
        for m in [&b""[..], b"admin", b"\0admin", b"\0\xff\0tok"] {
            assert!(matches!(plain(m), Err(SaslError::Malformed(_))), "{m:?}");
        }
        // PLAIN not offered: no exchange; and the password is not kept for it.
        let scram_only = sasl(&["SCRAM-SHA-256"], "admin", "tok");
        assert!(scram_only.start("PLAIN").is_none());
        assert!(scram_only.admin.as_ref().unwrap().plain.is_none());
    }

    #[test]
    fn mechanisms_parse_exactly_and_are_offered_as_configured() {
        for m in [
            Mechanism::Plain,
            Mechanism::ScramSha256,
            Mechanism::ScramSha512,
        ] {
            assert_eq!(Mechanism::parse(m.name()), Some(m));
        }
        for name in [
            "plain",
            "SCRAM-SHA-1",
            "scram-sha-256",
            "SCRAM-SHA-512-PLUS",
            "GSSAPI",
            "OAUTHBEARER",
            "",
        ] {
            assert_eq!(Mechanism::parse(name), None, "{name}");
        }
        let s = sasl(&["SCRAM-SHA-512", " PLAIN "], "admin", "tok");
        assert_eq!(s.mechanisms(), ["SCRAM-SHA-512", "PLAIN"]);
        assert!(s.start("SCRAM-SHA-256").is_none());
        assert!(s.start("GSSAPI").is_none());
        let e = Sasl::new(&["SCRAM-SHA-1".into()], None).unwrap_err();
        assert_eq!(e.0, "SCRAM-SHA-1");
        // Nothing secret in the debug output.
        let debug = format!("{s:?}");
        assert!(!debug.contains("tok\""), "{debug}");
    }

    static FUZZ: LazyLock<Sasl> =
        LazyLock::new(|| sasl(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], "admin", "tok"));

    fn any_mechanism() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("PLAIN"), Just("SCRAM-SHA-256"), Just("SCRAM-SHA-512")]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            mechanism in any_mechanism(),
            messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..160), 1..5),
        ) {
            let s = &*FUZZ;
            let mut x = s.start(mechanism).unwrap();
            let mut finished = false;
            for m in &messages {
                let r = x.step(s, m);
                if finished {
                    prop_assert!(matches!(r, Err(SaslError::Finished)));
                }
                finished |= !matches!(r, Ok(Step::Continue(_)));
            }
        }

        #[test]
        fn near_valid_scram_messages_never_panic(
            mechanism in prop_oneof![Just("SCRAM-SHA-256"), Just("SCRAM-SHA-512")],
            first in "(n|y|p=x|),(a=[^,]{0,6}|[^,]{0,3}),(n=[^,]{0,8}|m=x|),(r=[!-~]{0,12}|)(,[a-z]{0,9}=[^,]{0,5}){0,3}",
            last in "(c=biws|c=[A-Za-z0-9+/=]{0,8}|),(r=[!-~]{0,60}|[^,]{0,4})(,[a-z]{0,3}=[^,]{0,4}){0,2}(,p=[A-Za-z0-9+/=]{0,90}|)",
        ) {
            let s = &*FUZZ;
            let mut x = s.start(mechanism).unwrap();
            if x.step(s, first.as_bytes()).is_ok() {
                // Without the password no final message passes.
                prop_assert!(x.step(s, last.as_bytes()).is_err());
            }
            let mut x = s.start(mechanism).unwrap();
            continued(x.step(s, b"n,,n=admin,r=abc"));
            prop_assert!(x.step(s, last.as_bytes()).is_err());
        }
    }
}
