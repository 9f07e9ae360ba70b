//! The chat application: the `Message` type, message controllers (text, Zalo, image, file,
//! location, audio) and the registry that wires them to sockets.

pub mod audio;
pub mod controller;
pub mod file;
pub mod image;
pub mod location;
pub mod message;
pub mod rate;
pub mod registry;
pub mod text;
pub mod validate;
pub mod zalo;

pub use controller::{Draft, MessageController};
pub use message::Message;
pub use rate::ChatRate;
pub use registry::{ChatApp, SendError};
pub use validate::{ErrorCode, ValidationError};
