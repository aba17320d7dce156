//! Witness policies: which witnesses must have cosigned a checkpoint
//! before an auditor trusts it ("k of these n witness keys"). The text
//! format is a subset of the sigsum policy format (itself the model of
//! C2SP's proposed tlog-policy), with C2SP vkeys for keys:
//!
//! ```text
//! # The bureau's log, and three witnesses of which two must cosign.
//! log     strive+3c2bd8a1+AaGc...=
//! witness w1 w1.example+5f9e11c2+BNt...=  https://w1.example/
//! witness w2 w2.example+a1b2c3d4+BHh...=
//! witness w3 w3.example+0badf00d+BPq...=
//! group   two-of-three 2 w1 w2 w3
//! quorum  two-of-three
//! ```
//!
//! - `log VKEY`: the checkpoint must carry this log key's signature
//!   (optional; several `log` lines accept any of them).
//! - `witness NAME VKEY [URL]`: a witness, its `cosignature/v1` key and,
//!   for the log's `strive witness cosign`, where it answers.
//! - `group NAME K|all|any MEMBER...`: satisfied when K of its members
//!   (witnesses or earlier groups) are.
//! - `quorum NAME`: the witness or group that must be satisfied; `none`
//!   asks for no cosignature at all. Exactly one `quorum` line.
//!
//! Blank lines and lines starting with `#` are ignored.

use std::collections::BTreeMap;
use std::fmt;

use crate::{SignedCheckpoint, VerifierKey, WitnessVerifier};

/// A parsed witness policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    logs: Vec<VerifierKey>,
    witnesses: BTreeMap<String, PolicyWitness>,
    groups: BTreeMap<String, Group>,
    quorum: Option<String>,
}

/// One `witness` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWitness {
    /// Its name in the policy.
    pub name: String,
    /// Its cosignature key.
    pub key: WitnessVerifier,
    /// Where it answers `add-checkpoint`, if the policy says.
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    threshold: usize,
    members: Vec<String>,
}

/// What checking a checkpoint against a policy found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyReport {
    /// The witnesses whose cosignature verified, with when they cosigned
    /// (seconds since the epoch), by name.
    pub cosigned: BTreeMap<String, u64>,
}

/// Why a policy could not be read, or a checkpoint does not satisfy it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy text is malformed.
    Malformed {
        /// The 1-based line.
        line: usize,
        /// What is wrong there.
        message: String,
    },
    /// The checkpoint is not signed by any of the policy's log keys.
    LogNotSigned,
    /// Too few of the policy's witnesses cosigned the checkpoint.
    NotSatisfied {
        /// The quorum that failed.
        quorum: String,
        /// The witnesses whose cosignature verified.
        cosigned: Vec<String>,
        /// Cosignature lines by policy witnesses that did not verify.
        forged: Vec<String>,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Malformed { line, message } => {
                write!(f, "policy line {line}: {message}")
            }
            PolicyError::LogNotSigned => f.write_str(
                "the checkpoint is not signed by any log key of the policy (its `log` lines)",
            ),
            PolicyError::NotSatisfied {
                quorum,
                cosigned,
                forged,
            } => {
                let had = if cosigned.is_empty() {
                    "none".to_owned()
                } else {
                    cosigned.join(", ")
                };
                write!(
                    f,
                    "the checkpoint does not satisfy the witness policy: quorum {quorum:?} is \
                     not met (cosigned by: {had})"
                )?;
                if !forged.is_empty() {
                    write!(
                        f,
                        "; cosignatures that do not verify, from: {}",
                        forged.join(", ")
                    )?;
                }
                f.write_str(
                    "; have the log present this checkpoint to its witnesses \
                     (`strive witness cosign`)",
                )
            }
        }
    }
}

impl std::error::Error for PolicyError {}

/// A member name or group name, as the policy allows it.
fn check_identifier(name: &str, line: usize) -> Result<(), PolicyError> {
    if name.is_empty() || name == "none" || name.starts_with('#') {
        return Err(PolicyError::Malformed {
            line,
            message: format!("{name:?} cannot name a witness or group"),
        });
    }
    Ok(())
}

impl Policy {
    /// Reads a policy.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let mut policy = Policy {
            logs: Vec::new(),
            witnesses: BTreeMap::new(),
            groups: BTreeMap::new(),
            quorum: None,
        };
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let words: Vec<&str> = raw.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                [first, ..] if first.starts_with('#') => {}
                rest => policy.read_line(line, rest)?,
            }
        }
        if policy.quorum.is_none() {
            return Err(PolicyError::Malformed {
                line: text.lines().count().max(1),
                message: "the policy has no `quorum` line".to_owned(),
            });
        }
        Ok(policy)
    }

    fn read_line(&mut self, line: usize, words: &[&str]) -> Result<(), PolicyError> {
        let malformed = |message: String| PolicyError::Malformed { line, message };
        match words {
            ["log", key] => {
                let key = VerifierKey::parse(key).map_err(|e| malformed(e.to_string()))?;
                self.logs.push(key);
            }
            ["witness", name, key, url @ ..] if url.len() <= 1 => {
                check_identifier(name, line)?;
                if self.known(name) {
                    return Err(malformed(format!("{name:?} is defined twice")));
                }
                let key = WitnessVerifier::parse(key).map_err(|e| malformed(e.to_string()))?;
                self.witnesses.insert(
                    (*name).to_owned(),
                    PolicyWitness {
                        name: (*name).to_owned(),
                        key,
                        url: url.first().map(|u| (*u).to_owned()),
                    },
                );
            }
            ["group", name, threshold, members @ ..] if !members.is_empty() => {
                check_identifier(name, line)?;
                if self.known(name) {
                    return Err(malformed(format!("{name:?} is defined twice")));
                }
                for member in members {
                    if !self.known(member) {
                        return Err(malformed(format!(
                            "{member:?} is not a witness or group defined above"
                        )));
                    }
                }
                let threshold = match *threshold {
                    "all" => members.len(),
                    "any" => 1,
                    number => number
                        .parse::<usize>()
                        .ok()
                        .filter(|k| (1..=members.len()).contains(k))
                        .ok_or_else(|| {
                            malformed(format!(
                                "the threshold must be all, any, or 1 to {}",
                                members.len()
                            ))
                        })?,
                };
                let members = members.iter().map(|m| (*m).to_owned()).collect();
                self.groups
                    .insert((*name).to_owned(), Group { threshold, members });
            }
            ["quorum", name] => {
                if self.quorum.is_some() {
                    return Err(malformed("only one `quorum` line is allowed".to_owned()));
                }
                if *name != "none" && !self.known(name) {
                    return Err(malformed(format!(
                        "{name:?} is not a witness or group defined above"
                    )));
                }
                self.quorum = Some((*name).to_owned());
            }
            [keyword, ..] => {
                return Err(malformed(format!(
                    "`{keyword}` with these arguments is not a policy line; expected `log \
                     VKEY`, `witness NAME VKEY [URL]`, `group NAME K|all|any MEMBER...` or \
                     `quorum NAME`"
                )));
            }
            [] => {}
        }
        Ok(())
    }

    fn known(&self, name: &str) -> bool {
        self.witnesses.contains_key(name) || self.groups.contains_key(name)
    }

    /// The policy's witnesses, by name.
    pub fn witnesses(&self) -> impl Iterator<Item = &PolicyWitness> {
        self.witnesses.values()
    }

    /// Checks `checkpoint` against the policy: a log key's signature (when
    /// the policy names log keys) and the quorum of cosignatures.
    pub fn check(&self, checkpoint: &SignedCheckpoint) -> Result<PolicyReport, PolicyError> {
        if !self.logs.is_empty() && !self.logs.iter().any(|k| checkpoint.verify(k).is_ok()) {
            return Err(PolicyError::LogNotSigned);
        }
        let mut cosigned = BTreeMap::new();
        let mut forged = Vec::new();
        for witness in self.witnesses.values() {
            match witness.key.verify(checkpoint) {
                Ok(time) => {
                    cosigned.insert(witness.name.clone(), time);
                }
                Err(crate::CheckpointError::NotSigned { .. }) => {}
                Err(_) => forged.push(witness.name.clone()),
            }
        }
        let quorum = self.quorum.clone().unwrap_or_else(|| "none".to_owned());
        if quorum == "none" || self.satisfied(&quorum, &cosigned, 0) {
            return Ok(PolicyReport { cosigned });
        }
        Err(PolicyError::NotSatisfied {
            quorum,
            cosigned: cosigned.into_keys().collect(),
            forged,
        })
    }

    /// Whether `name` is satisfied. Groups only name members defined
    /// before them, so the recursion ends; `depth` bounds it anyway.
    fn satisfied(&self, name: &str, cosigned: &BTreeMap<String, u64>, depth: usize) -> bool {
        if cosigned.contains_key(name) {
            return true;
        }
        let Some(group) = self.groups.get(name) else {
            return false;
        };
        if depth > self.groups.len() {
            return false;
        }
        group
            .members
            .iter()
            .filter(|m| self.satisfied(m, cosigned, depth + 1))
            .count()
            >= group.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Checkpoint, SigningKey, WitnessKey};

    fn witness(n: u8) -> WitnessKey {
        WitnessKey::from_seed(&format!("w{n}.example"), [n; 32]).expect("a key")
    }

    fn policy_text(quorum: &str) -> String {
        let log = SigningKey::from_seed("strive", [100; 32]).expect("a key");
        let mut text = format!("# test\nlog {}\n", log.verifier().encode());
        for n in 1..=3 {
            text.push_str(&format!(
                "witness w{n} {}\n",
                witness(n).verifier().encode()
            ));
        }
        text.push_str(&format!("group two 2 w1 w2 w3\nquorum {quorum}\n"));
        text
    }

    fn cosigned_by(witnesses: &[u8]) -> SignedCheckpoint {
        let log = SigningKey::from_seed("strive", [100; 32]).expect("a key");
        let mut note = Checkpoint::new("strive", 4, [8; 32]).to_note(Some(&log));
        let body = Checkpoint::parse(&note).expect("parses").body;
        for n in witnesses {
            note.push_str(&witness(*n).cosign(&body, 1000 + u64::from(*n)));
        }
        Checkpoint::parse(&note).expect("parses")
    }

    #[test]
    fn k_of_n_cosignatures_satisfy_the_quorum() {
        let policy = Policy::parse(&policy_text("two")).expect("parses");
        let report = policy.check(&cosigned_by(&[1, 3])).expect("satisfied");
        assert_eq!(report.cosigned.get("w3"), Some(&1003));
        let refused = policy
            .check(&cosigned_by(&[2]))
            .expect_err("one is not two");
        assert!(refused.to_string().contains("cosigned by: w2"), "{refused}");
        assert!(
            Policy::parse(&policy_text("w1"))
                .expect("parses")
                .check(&cosigned_by(&[1]))
                .is_ok()
        );
        assert!(
            Policy::parse(&policy_text("none"))
                .expect("parses")
                .check(&cosigned_by(&[]))
                .is_ok()
        );
    }

    #[test]
    fn a_forged_cosignature_counts_for_nothing_and_is_named() {
        let policy = Policy::parse(&policy_text("two")).expect("parses");
        let honest = cosigned_by(&[1]);
        // w2's line, made by another key under w2's name and key id.
        let impostor = WitnessKey::from_seed("w2.example", [99; 32]).expect("a key");
        let mut line = impostor.cosign(&honest.body, 5);
        let real_id = hex::encode(witness(2).verifier().key_id());
        let fake_id = hex::encode(impostor.verifier().key_id());
        assert_ne!(real_id, fake_id);
        // Splice the real key id into the impostor's line.
        let (name, blob) = line.trim_end().rsplit_once(' ').expect("a line");
        let mut bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, blob)
            .expect("base64");
        bytes[..4].copy_from_slice(&witness(2).verifier().key_id());
        line = format!(
            "{name} {}\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
        );
        let text = format!("{}\n{}{line}", honest.body, signature_lines(&honest));
        let forged = Checkpoint::parse(&text).expect("parses");
        match policy.check(&forged) {
            Err(PolicyError::NotSatisfied { forged, .. }) => assert_eq!(forged, ["w2"]),
            other => panic!("expected a refusal naming w2, got {other:?}"),
        }
    }

    fn signature_lines(checkpoint: &SignedCheckpoint) -> String {
        use base64::Engine as _;
        checkpoint
            .signatures
            .iter()
            .map(|s| {
                let mut blob = s.key_id.to_vec();
                blob.extend_from_slice(&s.signature);
                format!(
                    "\u{2014} {} {}\n",
                    s.name,
                    base64::engine::general_purpose::STANDARD.encode(blob)
                )
            })
            .collect()
    }

    #[test]
    fn malformed_policies_name_their_line() {
        let w1 = witness(1).verifier().encode();
        for (text, line) in [
            ("quorum w1\n".to_owned(), 1),
            (format!("witness w1 {w1}\nwitness w1 {w1}\nquorum w1\n"), 2),
            (format!("witness w1 {w1}\ngroup g 2 w1\nquorum g\n"), 2),
            (format!("witness w1 {w1}\n"), 1),
            (format!("witness w1 {w1}\nquorum w1\nquorum w1\n"), 3),
            ("witness w1 not-a-key\nquorum w1\n".to_owned(), 1),
            ("frobnicate\n".to_owned(), 1),
        ] {
            match Policy::parse(&text) {
                Err(PolicyError::Malformed { line: got, .. }) => assert_eq!(got, line, "{text}"),
                other => panic!("{text:?}: expected a malformed policy, got {other:?}"),
            }
        }
    }
}
