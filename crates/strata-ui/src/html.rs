//! HTML pieces: every text that reaches a page goes through [`esc`]; the page frame
//! (title, the key-path box, breadcrumbs, the search box, the style sheet compiled
//! into the binary).

/// `text` escaped for HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A field type as a page names it.
pub fn type_name(ty: &strata_schema::FieldType) -> String {
    use strata_schema::FieldType as T;
    match ty {
        T::String => "text".into(),
        T::Int => "integer".into(),
        T::Bool => "true or false".into(),
        T::Enum(values) => format!("one of {}", values.join(", ")),
        T::Timestamp => "time (RFC 3339)".into(),
        T::Json => "JSON".into(),
        T::Ref(entity) => format!("the id of a {entity}"),
    }
}

/// A key variable's type as a page names it, with its article.
pub fn segment_name(ty: &strata_schema::SegmentType) -> &'static str {
    use strata_schema::SegmentType as T;
    match ty {
        T::Int => "an integer",
        T::Uuid => "a UUID",
        T::Ip => "an IP address",
        T::Email => "an email address",
        T::Slug => "a slug (letters, digits, - and _)",
        T::String => "a text",
        T::Regex(_) => "text of the pattern the schema gives",
    }
}

/// `text` percent-encoded for a query string value.
pub fn url(text: &str) -> String {
    strata_core::key::url_escape(text)
}

/// The value of `name` in a query string (`a=1&b=x%20y`), decoded.
pub fn param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

fn decode(text: &str) -> String {
    let b = text.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The style sheet, served at `/style.css` (no CDN, nothing fetched at run time).
pub const CSS: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2433;background:#f7f8fa}
header{background:#1d2433;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}
header form.search{margin-left:auto}
header input{padding:.3em .5em;width:22em;border-radius:4px;border:0}
header form.path input{width:34em;font-family:ui-monospace,monospace}
main{padding:1em 1.5em}
nav.crumbs{margin-bottom:.8em;color:#667}
nav.crumbs a{color:#2558c9}
table{border-collapse:collapse;background:#fff;min-width:40em}
td,th{border-bottom:1px solid #e3e6ec;padding:.35em .8em;text-align:left;vertical-align:top}
th{background:#eef1f6}
td.count{color:#667;text-align:right}
code,pre{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#fff;border:1px solid #e3e6ec;padding:.6em;overflow:auto;max-width:80em}
.secret{color:#a33;font-style:italic}
.entity{color:#667;font-size:12px;margin-left:.5em}
mark{background:#ffe58a}
.behind{position:fixed;top:0;right:0;background:#ffe58a;padding:.5em 1em;border:1px solid #c90}
";

/// A whole page: `title`, the breadcrumbs of `path` (when given), `body`.
pub fn page(title: &str, path: Option<&str>, body: &str) -> String {
    let crumbs = path.map(crumbs).unwrap_or_default();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{} · strata</title>\
         <link rel=\"stylesheet\" href=\"/style.css\"></head><body>\
         <header><a href=\"/browse?prefix=/\">strata</a><a href=\"/entities\">entities</a><a href=\"/health\">health</a>{}\
         <form action=\"/search\" class=\"search\"><input name=\"q\" placeholder=\"search keys and values\"></form></header>\
         <main>{crumbs}{body}</main></body></html>",
        esc(title),
        crate::paths::path_box(path.unwrap_or("/"))
    )
}

/// Links to each level of `path` (`/a/b/c`: `/`, `/a/`, `/a/b/`).
fn crumbs(path: &str) -> String {
    let mut out = String::from("<nav class=\"crumbs\"><a href=\"/browse?prefix=/\">/</a>");
    let mut at = String::from("/");
    for seg in path.trim_matches('/').split('/').filter(|s| !s.is_empty()) {
        at.push_str(seg);
        at.push('/');
        out.push_str(&format!(
            " <a href=\"/browse?prefix={}\">{}/</a>",
            url(&at),
            esc(seg)
        ));
    }
    out.push_str("</nav>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_query_strings() {
        assert_eq!(
            esc("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(url("/a b/ü?&"), "/a%20b/%C3%BC%3F%26");
        assert_eq!(
            param(Some("prefix=%2Fa%20b&x=1"), "prefix").as_deref(),
            Some("/a b")
        );
        assert_eq!(
            param(Some("q=grace+hopper"), "q").as_deref(),
            Some("grace hopper")
        );
        assert_eq!(param(Some("q=100%"), "q").as_deref(), Some("100%"));
        assert_eq!(param(None, "q"), None);
    }
}
