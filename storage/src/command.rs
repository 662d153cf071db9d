//! The application data of a Raft entry ([`Command`]) and what applying it returns ([`Response`]).

use std::fmt;

use crate::codec::Reader;
use crate::codec::Writer;
use crate::error::DecodeError;
use crate::nameserver::MetaCommand;
use crate::nameserver::MetaResponse;

/// What one Raft entry asks a state machine to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A change to the NameServer's metadata.
    Meta(MetaCommand),
}

/// Tags of [`Command`] variants in the entry encoding. Never reuse a retired tag.
mod tag {
    pub(super) const META: u8 = 1;
}

impl Command {
    /// Appends the command's encoding to `w`.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Command::Meta(m) => {
                // Serializing a plain enum of strings and numbers into a Vec cannot fail.
                let json = serde_json::to_vec(m).unwrap_or_default();
                w.u8(tag::META).bytes(&json);
            }
        }
    }

    /// Decodes a command written by [`Command::encode`].
    pub fn decode(r: &mut Reader<'_>) -> Result<Command, DecodeError> {
        match r.u8()? {
            tag::META => {
                let json = r.bytes()?;
                let m = serde_json::from_slice(json)
                    .map_err(|e| DecodeError::new("meta command", e.to_string()))?;
                Ok(Command::Meta(m))
            }
            t => Err(DecodeError::new("command", format!("unknown command tag {t}"))),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Meta(m) => write!(f, "meta:{m:?}"),
        }
    }
}

/// The result of applying one entry, handed back to whoever proposed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Nothing to report (blank and membership entries).
    Empty,
    /// Outcome of a NameServer change.
    Meta(MetaResponse),
}
