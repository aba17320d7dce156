//! The ids people give at run time: instance ids, command ids, actor ids and
//! the roles an actor claims (issue #17). One rule for all of them, enforced
//! here so the engine, the binary and an auditor's tool agree:
//!
//! - an id is normalised to Unicode NFC before anything else looks at it;
//! - it is 1 to [`MAX_ID_BYTES`] bytes of letters and digits of any script,
//!   combining marks after a letter or digit, and `-` `_` `.` `:` `@`;
//! - so spaces, `/` and `\`, control, invisible (format) and bidirectional
//!   characters, private-use and unassigned code points are all refused;
//! - an actor claims at most [`MAX_ROLES`] roles.
//!
//! [`skeleton`] gives Unicode's confusable skeleton (UTS #39), under which
//! `branch-7` and `brаnch-7` (with a Cyrillic `а`) are the same id, and
//! [`escape`] makes any user string safe to print on one line.

use std::borrow::Cow;
use std::fmt;

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;

use crate::load::MAX_ID_BYTES;
use crate::machine::Actor;

/// The most roles one actor may claim in one command.
pub const MAX_ROLES: usize = 32;

/// Why an id is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// The id is empty.
    Empty,
    /// The id is longer than [`MAX_ID_BYTES`] in NFC.
    TooLong {
        /// Its length in bytes.
        bytes: usize,
    },
    /// The id has a character outside the id character set.
    Character {
        /// The character.
        character: char,
        /// Its position, counted in characters from 0.
        at: usize,
    },
    /// The id starts with a combining mark.
    LeadingMark,
    /// More roles than [`MAX_ROLES`].
    TooManyRoles {
        /// How many were given.
        count: usize,
    },
}

impl IdError {
    /// A short reason that does not repeat the id, for error types that keep
    /// a static reason.
    pub fn reason(&self) -> &'static str {
        match self {
            IdError::Empty => "ids may not be empty",
            IdError::TooLong { .. } => "ids may be at most 128 bytes long (in NFC)",
            IdError::Character { .. } => {
                "ids may contain only letters, digits, combining marks and - _ . : @ \
                 (no spaces, slashes, control, invisible or bidirectional characters)"
            }
            IdError::LeadingMark => "ids may not start with a combining mark",
            IdError::TooManyRoles { .. } => "an actor may claim at most 32 roles",
        }
    }
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::TooLong { bytes } => write!(f, "{} (this one is {bytes})", self.reason()),
            IdError::Character { character, at } => write!(
                f,
                "{}: {} at character {at}",
                self.reason(),
                escape(&character.to_string())
            ),
            IdError::TooManyRoles { count } => write!(f, "{} ({count} given)", self.reason()),
            _ => f.write_str(self.reason()),
        }
    }
}

impl std::error::Error for IdError {}

/// `id` in NFC, if it is an acceptable id.
///
/// ```
/// use strive_core::id::canonical;
/// assert_eq!(canonical("cafe\u{301}-1").as_deref(), Ok("caf\u{e9}-1"));
/// assert!(canonical("a/../b").is_err());
/// assert!(canonical("branch\u{200b}7").is_err());
/// ```
pub fn canonical(id: &str) -> Result<Cow<'_, str>, IdError> {
    let id: Cow<'_, str> = if unicode_normalization::is_nfc(id) {
        Cow::Borrowed(id)
    } else {
        Cow::Owned(id.nfc().collect())
    };
    check(&id)?;
    Ok(id)
}

/// Checks an id already in NFC against the character set and length.
fn check(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong { bytes: id.len() });
    }
    for (at, character) in id.chars().enumerate() {
        match class(character) {
            Class::Allowed => {}
            Class::Mark if at > 0 => {}
            Class::Mark => return Err(IdError::LeadingMark),
            Class::Refused => return Err(IdError::Character { character, at }),
        }
    }
    Ok(())
}

enum Class {
    Allowed,
    Mark,
    Refused,
}

fn class(character: char) -> Class {
    use GeneralCategory as G;
    if matches!(character, '-' | '_' | '.' | ':' | '@') {
        return Class::Allowed;
    }
    match get_general_category(character) {
        G::UppercaseLetter
        | G::LowercaseLetter
        | G::TitlecaseLetter
        | G::ModifierLetter
        | G::OtherLetter
        | G::DecimalNumber
        | G::LetterNumber
        | G::OtherNumber => Class::Allowed,
        G::NonspacingMark | G::SpacingMark | G::EnclosingMark => Class::Mark,
        _ => Class::Refused,
    }
}

/// `actor` with its id and roles in NFC, if they are acceptable ids and the
/// roles are at most [`MAX_ROLES`]. Which roles an actor may claim is the
/// definition's business, and which the engine reserves is the engine's.
pub fn canonical_actor(actor: &Actor) -> Result<Actor, IdError> {
    if actor.roles.len() > MAX_ROLES {
        return Err(IdError::TooManyRoles {
            count: actor.roles.len(),
        });
    }
    let roles = actor
        .roles
        .iter()
        .map(|role| canonical(role).map(Cow::into_owned))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Actor {
        id: canonical(&actor.id)?.into_owned(),
        roles,
    })
}

/// Unicode's confusable skeleton of `id` (UTS #39, section 4): two ids with
/// the same skeleton look alike to a reader, so a workflow should not hold
/// both.
///
/// ```
/// use strive_core::id::skeleton;
/// assert_eq!(skeleton("branch-7"), skeleton("br\u{430}nch-7"));
/// assert_ne!(skeleton("branch-7"), skeleton("branch-8"));
/// ```
pub fn skeleton(id: &str) -> String {
    unicode_security::skeleton(id).collect()
}

/// `text` with every character that could change how a line reads
/// (controls such as newline, invisible and bidirectional formatting
/// characters, line and paragraph separators, private-use and unassigned
/// code points) and the backslash written as `\u{…}` escapes: what text
/// output prints for any user-supplied string.
///
/// ```
/// use strive_core::id::escape;
/// assert_eq!(escape("li"), "li");
/// assert_eq!(escape("li\nfake line"), "li\\u{a}fake line");
/// assert_eq!(escape("\u{202e}abc"), "\\u{202e}abc");
/// ```
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        if needs_escape(character) {
            escaped.push_str(&format!("\\u{{{:x}}}", u32::from(character)));
        } else {
            escaped.push(character);
        }
    }
    Cow::Owned(escaped)
}

fn needs_escape(character: char) -> bool {
    use GeneralCategory as G;
    character == '\\'
        || matches!(
            get_general_category(character),
            G::Control
                | G::Format
                | G::LineSeparator
                | G::ParagraphSeparator
                | G::PrivateUse
                | G::Surrogate
                | G::Unassigned
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_any_script_are_accepted() {
        for id in [
            "branch-7",
            "org-03",
            "王芳",
            "член-7",
            "a:b.c_d@e",
            "x".repeat(MAX_ID_BYTES).as_str(),
        ] {
            assert_eq!(canonical(id).as_deref(), Ok(id), "{id}");
        }
    }

    #[test]
    fn hostile_ids_are_refused_with_the_rule_broken() {
        let long = "x".repeat(MAX_ID_BYTES + 1);
        type Expected = fn(&IdError) -> bool;
        let cases: [(&str, Expected); 9] = [
            ("", |e| *e == IdError::Empty),
            (&long, |e| matches!(e, IdError::TooLong { bytes: 129 })),
            ("a b", |e| {
                matches!(
                    e,
                    IdError::Character {
                        character: ' ',
                        at: 1
                    }
                )
            }),
            ("../etc", |e| {
                matches!(e, IdError::Character { character: '/', .. })
            }),
            ("line\nfake", |e| {
                matches!(
                    e,
                    IdError::Character {
                        character: '\n',
                        ..
                    }
                )
            }),
            ("branch\u{200b}7", |e| {
                matches!(e, IdError::Character { .. })
            }),
            ("\u{202e}7-hcnarb", |e| {
                matches!(e, IdError::Character { .. })
            }),
            ("\u{301}a", |e| *e == IdError::LeadingMark),
            ("a\\b", |e| {
                matches!(
                    e,
                    IdError::Character {
                        character: '\\',
                        ..
                    }
                )
            }),
        ];
        for (id, expected) in cases {
            match canonical(id) {
                Err(error) => assert!(expected(&error), "{id:?}: {error:?}"),
                Ok(found) => panic!("{id:?} accepted as {found:?}"),
            }
        }
    }

    #[test]
    fn ids_are_normalised_to_nfc_and_bounded_in_nfc() {
        assert_eq!(canonical("e\u{301}").as_deref(), Ok("\u{e9}"));
        let decomposed = "e\u{301}".repeat(64);
        assert_eq!(canonical(&decomposed).map(|id| id.len()), Ok(128));
    }

    #[test]
    fn actors_are_normalised_and_their_roles_bounded() {
        let actor = Actor::new("e\u{301}", &["chief"]);
        assert_eq!(
            canonical_actor(&actor),
            Ok(Actor::new("\u{e9}", &["chief"]))
        );
        let roles: Vec<String> = (0..=MAX_ROLES).map(|i| format!("r{i}")).collect();
        let many = Actor {
            id: "li".to_owned(),
            roles,
        };
        assert_eq!(
            canonical_actor(&many),
            Err(IdError::TooManyRoles { count: 33 })
        );
        assert!(canonical_actor(&Actor::new("li", &["a b"])).is_err());
    }

    #[test]
    fn confusable_ids_share_a_skeleton() {
        assert_eq!(skeleton("branch-7"), skeleton("br\u{430}nch-7"));
        assert_eq!(skeleton("paypal"), skeleton("p\u{430}yp\u{430}l"));
        assert_ne!(skeleton("member-71"), skeleton("member-72"));
    }

    #[test]
    fn escape_leaves_ordinary_text_and_escapes_the_rest() {
        assert!(matches!(escape("王芳 member-71"), Cow::Borrowed(_)));
        assert_eq!(escape("a\u{2028}b\u{feff}"), "a\\u{2028}b\\u{feff}");
        assert_eq!(escape("a\\u{a}"), "a\\u{5c}u{a}");
    }
}
