//! Declarations nothing uses: roles no transition allows (W102) and
//! variables nothing reads or writes (W103).

use super::Checker;
use crate::diagnostic::Code;

pub(super) fn check(ck: &mut Checker<'_>) {
    let def = ck.def;
    for (i, role) in def.roles.iter().enumerate() {
        let used = def
            .transitions
            .iter()
            .any(|t| t.roles.iter().any(|r| r == &role.id))
            || def.lifecycle.as_ref().is_some_and(|l| {
                [&l.suspend, &l.resume, &l.cancel, &l.terminate]
                    .iter()
                    .any(|roles| roles.contains(&role.id))
            });
        if !used {
            ck.report(
                Code::UnusedRole,
                &format!("/roles/{i}/id"),
                format!(
                    "role `{}` is declared but no transition or lifecycle operation allows it; \
                     add it to the `roles` of the transitions it may fire, or remove it",
                    role.id
                ),
            );
        }
    }
    // `used_vars` was filled by the passes that read guards, effects and
    // deadlines, which ran before this one.
    for (i, field) in def.data.iter().enumerate() {
        if !ck.used_vars.contains(field.id.as_str()) {
            ck.report(
                Code::UnusedVariable,
                &format!("/data/{i}/id"),
                format!(
                    "variable `{}` is declared but no guard, effect or deadline reads or \
                     writes it; use it or remove it",
                    field.id
                ),
            );
        }
    }
}
