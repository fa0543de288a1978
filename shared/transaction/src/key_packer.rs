//! The text of a transaction key, written on the stack and then digested
//! ([`crate::key_digest`]): a key is made for every received message, and none of them needs
//! an allocation.

use crate::key_digest::{self, Domain};

/// Writes a key's text on the stack for its digest (a key longer than the stack buffer, which
/// real branches and sent-bys never need, spills to a `String`).
#[derive(Debug)]
pub struct Packer {
    stack: [u8; 192],
    len: usize,
    spilled: Option<String>,
}

impl Default for Packer {
    fn default() -> Self {
        Packer {
            stack: [0; 192],
            len: 0,
            spilled: None,
        }
    }
}

impl Packer {
    /// Appends `text` as it is.
    pub fn push(&mut self, text: &str) {
        if let Some(spilled) = &mut self.spilled {
            spilled.push_str(text);
        } else if self.len + text.len() <= self.stack.len() {
            self.stack[self.len..self.len + text.len()].copy_from_slice(text.as_bytes());
            self.len += text.len();
        } else {
            let mut spilled = String::with_capacity(self.len + text.len() + 64);
            spilled.push_str(self.as_str());
            spilled.push_str(text);
            self.spilled = Some(spilled);
        }
    }

    /// Appends `number` in decimal, through `itoa` rather than `write!`, whose formatting
    /// machinery showed in the profile of a key made for every received message.
    pub fn push_number(&mut self, number: impl itoa::Integer) {
        self.push(itoa::Buffer::new().format(number));
    }

    /// Appends `text` in ASCII lower case.
    pub fn push_lowercase(&mut self, text: &str) {
        let start = self.len;
        self.push(text);
        match &mut self.spilled {
            Some(spilled) => {
                let from = spilled.len() - text.len();
                spilled[from..].make_ascii_lowercase();
            }
            None => self.stack[start..self.len].make_ascii_lowercase(),
        }
    }

    fn as_str(&self) -> &str {
        // Only whole `&str`s are copied in, and ASCII lower-casing keeps UTF-8 valid.
        std::str::from_utf8(&self.stack[..self.len]).unwrap_or_default()
    }

    pub(crate) fn digest(&self, domain: Domain) -> [u64; 2] {
        match &self.spilled {
            Some(spilled) => key_digest::digest(domain, spilled.as_bytes()),
            None => key_digest::digest(domain, &self.stack[..self.len]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_in_decimal_as_display_writes_them() {
        let mut packer = Packer::default();
        packer.push_number(5060u16);
        packer.push(":");
        packer.push_number(0usize);
        packer.push(" ");
        packer.push_number(u32::MAX);
        assert_eq!(packer.as_str(), format!("5060:0 {}", u32::MAX));
    }
}
