//! One hardware line: the only part of the ATA that touches a handset (hook, keypad, ringer,
//! tones, microphone and earpiece).
//!
//! - [`phone`]: the line's telephone logic, pure (tones, digits, dial plan, call progress);
//! - [`handset`]: the [`Handset`] trait, the hardware as the actor sees it; backends are
//!   [`virtual_line`] (files, driven by the control API) and `usb` (a USB handset);
//! - [`actor`]: the [`LineActor`], which runs the phone, drives the handset and starts one
//!   call actor per call;
//! - [`status`]: what the line reports to the control API ([`LineStatus`]).
//!
//! Calls report back with `call::news::CallNews`; the call's media actor sends
//! `EarpieceFrame`s and `RemoteDigit`s and receives the microphone's frames every 20 ms. Those
//! messages are their senders' (the call's and the media's modules define them), and the
//! line hands each call its recipients (`call::news::LineInbox`), so arrows run from the line
//! down, never back.
//!
//! Blind transfer: as transferor the line sends `Transfer` to its call; as transferee, when
//! its call reports `News::Referred`, the line places the new call itself, makes it the
//! current one, and relays its progress to the old call as `ReferNotify` (which the old call
//! turns into NOTIFYs) until it is answered or fails. The registration actor reports its
//! state with `RegistrationChanged` (its message, to this actor's recipient); the control API
//! asks with [`Command`] and [`GetStatus`].

pub mod actor;
pub mod audio_source;
pub mod caller_id;
pub mod earpiece;
pub mod handset;
pub mod phone;
pub mod status;
pub mod usb;
pub mod virtual_line;

pub use actor::{AttachRegistration, Command, Control, GetStatus, LineActor, LineSetup};
pub use handset::{Handset, HandsetEvent};
pub use status::{CallStatus, LineStatus};
