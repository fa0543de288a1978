//! Message-waiting indication for each line (RFC 3842's message-summary package over RFC
//! 6665 SUBSCRIBE/NOTIFY): whether voicemail waits, and how many messages, so the telephone
//! can play stutter dial tone.
//!
//! Split as the registration is, rules apart from the shell: [`subscription`] (what to
//! SUBSCRIBE, when to refresh, how to back off), [`notify`] (what a NOTIFY's headers say,
//! and its answer) and [`summary`] (the NOTIFY body) are pure; [`actor`] (`MwiActor`, one per
//! line) carries SUBSCRIBEs and NOTIFYs to and from the endpoint, takes the unsolicited
//! NOTIFYs the endpoint answered itself, and tells the line the counts with its own message,
//! `MessagesWaiting`, sent to a recipient it is given.
//!
//! Arrows run from the line and the app to here, and from here to the endpoint, `auth`,
//! `identity` and `call::route` (how an in-dialog request is addressed, the one rule the
//! calls use too), never back.
pub mod actor;
pub mod notify;
pub mod subscription;
pub mod summary;
