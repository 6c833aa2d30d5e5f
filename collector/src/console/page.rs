//! The console's page shell (navigation, styles, the one small script) and the helpers pages share:
//! times, badges and links.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::auth::Role;
use crate::http::AppError;

/// The stylesheet, served inline in every page (no other request, no CDN).
const STYLE: &str = include_str!("assets/console.css");
/// The console's only script: the live alert feed (server-sent events) and the confirm prompts. Pages work
/// without it, except that the feed then needs a reload.
pub const SCRIPT: &str = include_str!("assets/console.js");

/// What every page knows of the person viewing it.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// Their role.
    pub role: Role,
    /// The CSRF token their forms carry (empty for bearer-token requests, which need none).
    pub csrf: String,
}

impl Viewer {
    /// Whether they may decide holds and change alert states.
    pub fn can_decide(&self) -> bool {
        self.role >= Role::Approver
    }

    /// The hidden CSRF field of a form.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }
}

/// A whole page: `title`, the navigation with `active` marked, and `body`.
pub fn page(title: &str, active: &str, viewer: Option<&Viewer>, body: Markup) -> Markup {
    let nav = [
        ("/", "Fleet"),
        ("/alerts", "Alerts"),
        ("/search", "Search"),
        ("/rules", "Rules"),
        ("/holds", "Holds"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · auditloop" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    span.brand { "auditloop" }
                    @if let Some(v) = viewer {
                        nav {
                            @for (href, name) in nav {
                                a href=(href) class=[(name == active).then_some("active")] { (name) }
                            }
                        }
                        form.logout method="post" action="/logout" {
                            (v.csrf_field())
                            span.role { (v.role.as_str()) }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
                script src="/assets/console.js" {}
            }
        }
    }
}

/// An RFC 3339 time of `ns` since the Unix epoch (or `—` for none).
pub fn time(ns: Option<u64>) -> String {
    match ns {
        Some(ns) if ns > 0 => auditloop_model::WallTime(ns).to_string(),
        Some(_) | None => "—".into(),
    }
}

/// How long ago `ns` was, relative to `now_ns`, in words (`12 s`, `3 min`, `5 h`, `2 d`).
pub fn ago(ns: Option<u64>, now_ns: u64) -> String {
    let Some(ns) = ns.filter(|&n| n > 0) else {
        return "never".into();
    };
    let secs = now_ns.saturating_sub(ns) / 1_000_000_000;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// A coloured badge: `class` is one of `ok`, `warn`, `bad`, `idle`.
pub fn badge(text: &str, class: &str) -> Markup {
    html! { span class=(format!("badge {class}")) data-badge=(text) { (text) } }
}

/// The badge class of a severity name.
pub fn severity_class(severity: &str) -> &'static str {
    match severity {
        "emergency" | "alert" | "critical" | "error" => "bad",
        "warning" => "warn",
        _ => "idle",
    }
}

/// A link to a stored event.
pub fn event_link(host: &str, seq: u64) -> Markup {
    html! { a href=(format!("/event/{}/{seq}", urlencode(host))) { (host) " #" (seq) } }
}

/// A form field's value, trimmed; `None` when it is blank.
pub fn field(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

/// A form field holding a time (RFC 3339 or ns since the Unix epoch); `None` when it is blank.
pub fn time_field(name: &str, value: &str) -> Result<Option<u64>, AppError> {
    field(value)
        .map(|t| {
            crate::http::parse_time(&t).map_err(|e| AppError::BadRequest(format!("{name}: {e}")))
        })
        .transpose()
}

/// The non-empty `fields` as a query string (`k=v&…`), to repeat a form's filters in links and feeds.
pub fn query_string(fields: &[(&str, &String)]) -> String {
    fields
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `text` percent-encoded for a path segment or query value.
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A small inline SVG sparkline of `values` (e.g. events per minute), scaled to its maximum.
pub fn sparkline(values: &[u64]) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let w = 2 * values.len().max(1);
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{},{}", 2 * i, 20 - (v * 18 / max)))
        .collect();
    html! {
        svg.spark width=(w) height="20" viewBox=(format!("0 0 {w} 20")) role="img" {
            polyline fill="none" stroke="currentColor" stroke-width="1.5" points=(points.join(" ")) {}
        }
    }
}

/// A bar histogram of `counts` (one bar per bucket) with `labels` under its ends.
pub fn histogram(counts: &[u64], first: &str, last: &str) -> Markup {
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let bar = 6usize;
    let w = bar * counts.len().max(1);
    html! {
        figure.histogram {
            svg width=(w) height="60" viewBox=(format!("0 0 {w} 60")) role="img" {
                @for (i, c) in counts.iter().enumerate() {
                    @let h = (c * 58 / max).max(u64::from(*c > 0));
                    rect x=(i * bar) y=(60 - h) width=(bar - 1) height=(h) { title { (c) } }
                }
            }
            figcaption { span { (first) } span { (last) } }
        }
    }
}
