//! The page frame every console page shares (landmarks, navigation, the
//! language switch, sign-out), the two languages, and small pieces the
//! pages reuse.

use axum::http::StatusCode;
use axum::response::Html;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;
use strive_core::Label;

use super::session::Viewer;

/// The console's language: Chinese by default (the campaign's people read
/// Chinese), English on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Lang {
    /// 中文.
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    pub(crate) fn parse(code: &str) -> Option<Lang> {
        match code {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The code labels are looked up by.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The text in this language.
    pub(crate) fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    /// A definition's label in this language, or `fallback`.
    pub(crate) fn label<'a>(self, label: Option<&'a Label>, fallback: &'a str) -> &'a str {
        label.map_or(fallback, |l| l.get(self.code()))
    }

    fn html_lang(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
}

/// Who a page in the navigation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum For {
    Everyone,
    SignedIn,
    Admins,
}

/// The pages in the navigation: path, Chinese, English, and who sees the
/// link (the pages themselves check again).
const NAV: &[(&str, &str, &str, For)] = &[
    ("/", "总览", "Dashboard", For::SignedIn),
    ("/instances", "实例", "Instances", For::SignedIn),
    ("/audit", "审计", "Audit", For::SignedIn),
    ("/definitions", "流程定义", "Definitions", For::SignedIn),
    ("/access", "权限", "Access", For::Admins),
    ("/pledges", "公开承诺", "Public pledges", For::Everyone),
];

/// A whole page: `title` and `body` inside the shared frame.
pub(crate) fn page(viewer: &Viewer, title: &str, body: Markup) -> Html<String> {
    let lang = viewer.lang;
    let path = viewer.here.split('?').next().unwrap_or("/");
    let current = |href: &str| {
        if href == "/" {
            path == "/"
        } else {
            path.starts_with(href)
        }
    };
    let shown = |who: For| match who {
        For::Everyone => true,
        For::SignedIn => viewer.user.is_some(),
        For::Admins => viewer.user.as_ref().is_some_and(|u| u.is_admin()),
    };
    let other = match lang {
        Lang::Zh => ("en", "English"),
        Lang::En => ("zh", "中文"),
    };
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.html_lang()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t("创先争优控制台", "strive console")) }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { (lang.t("跳到正文", "Skip to content")) }
                header.top {
                    div.brand { (lang.t("创先争优 · strive 控制台", "Strive for excellence · console")) }
                    nav aria-label=(lang.t("主导航", "Main")) {
                        ul {
                            @for (href, zh, en, who) in NAV {
                                @if shown(*who) { li {
                                    a href=(href) aria-current=[current(href).then_some("page")] { (lang.t(zh, en)) }
                                } }
                            }
                        }
                    }
                    div.tools {
                        a.lang href={ "/lang/" (other.0) "?back=" (encode(&viewer.here)) }
                            lang=(other.0) hreflang=(other.0) { (other.1) }
                        @if let Some(user) = &viewer.user {
                            span.who { (lang.t("已登录：", "Signed in: ")) strong { (user.record.actor) } " (" (user.record.roles.join(", ")) ")" }
                            form.inline method="post" action="/signout" {
                                input type="hidden" name="csrf" value=(user.csrf);
                                button type="submit" { (lang.t("退出登录", "Sign out")) }
                            }
                        } @else {
                            a href="/signin" { (lang.t("登录", "Sign in")) }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
                footer { (lang.t("审计日志哈希链接，可随时核验。", "The audit log is hash-chained and can be verified at any time.")) }
            }
        }
    };
    Html(markup.into_string())
}

/// The page a refusal renders to.
pub(crate) fn failure_page(lang: super::Lang, status: StatusCode, message: &str) -> Html<String> {
    let viewer = Viewer {
        lang,
        user: None,
        here: "/".to_owned(),
        limited: false,
    };
    let title = match status {
        StatusCode::UNAUTHORIZED => lang.t("需要登录", "Sign-in needed"),
        StatusCode::FORBIDDEN => lang.t("不允许", "Not allowed"),
        StatusCode::NOT_FOUND => lang.t("找不到", "Not found"),
        _ => lang.t("无法完成", "Could not be done"),
    };
    let body = html! {
        h1 { (title) }
        p.alert role="alert" { (message) }
        p {
            @if status == StatusCode::UNAUTHORIZED {
                a href="/signin" { (lang.t("去登录", "Sign in")) } " · "
            }
            a href="/pledges" { (lang.t("公开承诺不需要登录", "The public pledges need no sign-in")) }
        }
    };
    page(&viewer, title, body)
}

/// A JSON value, pretty, in a `pre`.
pub(crate) fn json_block(value: &Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    // Scrollable regions take the focus, so a keyboard can scroll them.
    html! { pre.json tabindex="0" { (text) } }
}

/// A JSON value on one line, for table cells.
pub(crate) fn json_inline(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A time as people read it here: in China's time (UTC+8, no daylight
/// saving, as the campaign's calendar), to the minute.
pub(crate) fn when(at: jiff::Timestamp) -> String {
    let china = jiff::tz::TimeZone::fixed(jiff::tz::Offset::constant(8));
    at.to_zoned_datetime(china)
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// Percent-encodes a query parameter's value.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An inline SVG diagram, `current` (a stage id) highlighted.
pub(crate) fn diagram(svg: &str, current: Option<&str>) -> Markup {
    let svg = match current {
        Some(stage) => {
            let attribute = format!("data-stage=\"{}\"", escape_attribute(stage));
            svg.replacen(&attribute, &format!("{attribute} data-current=\"true\""), 1)
        }
        None => svg.to_owned(),
    };
    html! { div.diagram-wrap tabindex="0" { (PreEscaped(svg)) } }
}

/// Escapes text for an attribute, as the diagram writes its stage ids.
fn escape_attribute(text: &str) -> String {
    maud::html! { (text) }.into_string().replace('"', "&quot;")
}

/// A table header cell.
pub(crate) fn th(text: &str) -> Markup {
    html! { th scope="col" { (text) } }
}

/// A table header cell over numbers, aligned with them.
pub(crate) fn th_num(text: &str) -> Markup {
    html! { th.num scope="col" { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded_but_paths_stay_readable() {
        assert_eq!(encode("/instances?x=1&y"), "/instances%3Fx%3D1%26y");
        assert_eq!(encode("组织"), "%E7%BB%84%E7%BB%87");
    }

    #[test]
    fn the_current_stage_is_marked_once() {
        let svg = r#"<g data-stage="a"></g><g data-stage="ab"></g>"#;
        let marked = diagram(svg, Some("ab")).into_string();
        assert!(marked.contains(r#"data-stage="ab" data-current="true""#));
        assert!(!marked.contains(r#"data-stage="a" data-current"#));
    }
}
