//! The `lifecycle` section (issue #13, item 3): its roles declared (S003)
//! and not `system` (S026), a suspend that someone can resume (S027), and
//! warnings for a `children` policy with no children (W106) and a section
//! that allows nothing (W107).

use super::Checker;
use crate::definition::SYSTEM_ROLE;
use crate::diagnostic::Code;
use crate::lifecycle::Operation;

pub(super) fn check(ck: &mut Checker<'_>) {
    let Some(lifecycle) = &ck.def.lifecycle else {
        return;
    };
    let lists = [
        (Operation::Suspend, &lifecycle.suspend),
        (Operation::Resume, &lifecycle.resume),
        (Operation::Cancel, &lifecycle.cancel),
        (Operation::Terminate, &lifecycle.terminate),
    ];
    for (op, roles) in lists {
        for (k, role) in roles.iter().enumerate() {
            roles_entry(ck, op, role, &format!("/lifecycle/{op}/{k}"));
        }
    }
    if !lifecycle.suspend.is_empty() && lifecycle.resume.is_empty() {
        ck.report(
            Code::SuspendWithoutResume,
            "/lifecycle/suspend",
            "roles may suspend instances but none may resume them, so a suspended instance \
             could only be cancelled; list the roles that may resume in `lifecycle.resume`",
        );
    }
    if lists.iter().all(|(_, roles)| roles.is_empty()) {
        ck.report(
            Code::LifecycleEmpty,
            "/lifecycle",
            "the `lifecycle` section allows no role any operation; list roles under \
             `suspend`, `resume`, `cancel` or `terminate`, or remove the section",
        );
    }
    let policy_given = ck.parsed.value.pointer("/lifecycle/children").is_some();
    let spawns = ck.def.transitions.iter().any(|t| t.spawn.is_some());
    if policy_given && !spawns {
        ck.report(
            Code::LifecycleChildrenUnused,
            "/lifecycle/children",
            "`lifecycle.children` says what children do, but no transition spawns any; \
             remove it, or add the `spawn` it was meant for",
        );
    }
}

/// One role of an operation's list: declared, and not `system`.
fn roles_entry(ck: &mut Checker<'_>, op: Operation, role: &str, pointer: &str) {
    if role == SYSTEM_ROLE {
        ck.report(
            Code::LifecycleSystemRole,
            pointer,
            format!(
                "`system` may not {op}: the engine never changes an instance's lifecycle on \
                 its own; name the people's roles that may"
            ),
        );
        return;
    }
    if !ck.roles.contains(role) {
        let hint = ck.hint(role, ck.roles.iter().copied());
        ck.report(
            Code::UnknownRole,
            pointer,
            format!(
                "role `{role}` is not declared{hint}; add {{\"id\": \"{role}\"}} to `roles` \
                 or fix the name"
            ),
        );
    }
}
