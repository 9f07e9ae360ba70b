//! Which Socket.IO parser a server speaks (`PARSER`): the default text one, or msgpack
//! (`socket.io-msgpack-parser`). Every client of a server must use the same one, as in Node.

use std::fmt;
use std::str::FromStr;

/// The wire format of Socket.IO packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Parser {
    /// `socket.io-parser`: text packets, binaries as attachment messages.
    #[default]
    Default,
    /// `socket.io-msgpack-parser`: each packet one binary msgpack message.
    Msgpack,
}

impl FromStr for Parser {
    type Err = String;
    fn from_str(s: &str) -> Result<Parser, String> {
        match s {
            "default" => Ok(Parser::Default),
            "msgpack" => Ok(Parser::Msgpack),
            _ => Err("expected default or msgpack".into()),
        }
    }
}

impl fmt::Display for Parser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Parser::Default => "default",
            Parser::Msgpack => "msgpack",
        })
    }
}
