//! A small reader for the HTML that PEP 503 project pages and find-links pages use: the
//! `<a>` anchors with their attributes, and an optional `<base href>`. Not a general HTML
//! parser: it skips comments, `<script>`/`<style>` bodies and every other tag, decodes
//! character references in attribute values, and never fails (what it cannot read it
//! skips), which is how pip treats these pages.

use std::collections::BTreeMap;

/// One `<a>` tag: its attributes (names lowercased, values decoded).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Anchor {
    pub(crate) attributes: BTreeMap<String, String>,
}

impl Anchor {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}

/// What a page holds: its anchors in document order, and the first `<base href>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Page {
    pub(crate) base: Option<String>,
    pub(crate) anchors: Vec<Anchor>,
}

/// Read every anchor (and the base) of `html`.
pub(crate) fn parse(html: &str) -> Page {
    let mut page = Page::default();
    let bytes = html.as_bytes();
    let mut position = 0;
    while let Some(offset) = html[position..].find('<') {
        let start = position + offset;
        let rest = &html[start..];
        if rest.starts_with("<!--") {
            position = match rest.find("-->") {
                Some(end) => start + end + 3,
                None => html.len(),
            };
            continue;
        }
        // A tag name: letters and digits after `<` (or `</`).
        let name_start = start + 1;
        let name_end = bytes[name_start..]
            .iter()
            .position(|byte| !byte.is_ascii_alphanumeric())
            .map_or(html.len(), |end| name_start + end);
        let name = html[name_start..name_end].to_ascii_lowercase();
        if name.is_empty() {
            // `</…>`, `<!DOCTYPE…>`, `<?…>` or a stray `<`.
            position = start + 1;
            continue;
        }
        let (attributes, tag_end) = parse_attributes(html, name_end);
        position = tag_end;
        match name.as_str() {
            "a" => page.anchors.push(Anchor { attributes }),
            "base" if page.base.is_none() => {
                page.base = attributes.get("href").cloned();
            }
            "script" | "style" => {
                // Raw text: skip to the closing tag.
                let closing = format!("</{name}");
                position = match html[position..].to_ascii_lowercase().find(&closing) {
                    Some(end) => position + end,
                    None => html.len(),
                };
            }
            _ => {}
        }
    }
    page
}

/// Attributes from `position` (just after the tag name) to the closing `>`; returns them
/// and the position after the tag.
fn parse_attributes(html: &str, mut position: usize) -> (BTreeMap<String, String>, usize) {
    let bytes = html.as_bytes();
    let mut attributes = BTreeMap::new();
    loop {
        while position < bytes.len()
            && (bytes[position].is_ascii_whitespace() || bytes[position] == b'/')
        {
            position += 1;
        }
        if position >= bytes.len() {
            return (attributes, position);
        }
        if bytes[position] == b'>' {
            return (attributes, position + 1);
        }
        let name_start = position;
        while position < bytes.len()
            && !bytes[position].is_ascii_whitespace()
            && !matches!(bytes[position], b'=' | b'>' | b'/')
        {
            position += 1;
        }
        let name = html[name_start..position].to_ascii_lowercase();
        while position < bytes.len() && bytes[position].is_ascii_whitespace() {
            position += 1;
        }
        let mut value = String::new();
        if position < bytes.len() && bytes[position] == b'=' {
            position += 1;
            while position < bytes.len() && bytes[position].is_ascii_whitespace() {
                position += 1;
            }
            if position < bytes.len() && matches!(bytes[position], b'"' | b'\'') {
                let quote = bytes[position];
                let value_start = position + 1;
                let value_end = bytes[value_start..]
                    .iter()
                    .position(|byte| *byte == quote)
                    .map_or(bytes.len(), |end| value_start + end);
                value = decode_references(&html[value_start..value_end]);
                position = (value_end + 1).min(bytes.len());
            } else {
                let value_start = position;
                while position < bytes.len()
                    && !bytes[position].is_ascii_whitespace()
                    && bytes[position] != b'>'
                {
                    position += 1;
                }
                value = decode_references(&html[value_start..position]);
            }
        }
        if !name.is_empty() {
            attributes.entry(name).or_insert(value);
        }
    }
}

/// Decode `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&#NN;` and `&#xHH;`; anything
/// else is kept as written.
fn decode_references(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(index) = rest.find('&') {
        out.push_str(&rest[..index]);
        rest = &rest[index..];
        // Byte search: `;` is ASCII, so its position is a character boundary.
        let window = &rest.as_bytes()[..rest.len().min(12)];
        let Some(end) = window.iter().position(|byte| *byte == b';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| {
                    entity
                        .strip_prefix('#')
                        .and_then(|decimal| decimal.parse().ok())
                })
                .and_then(char::from_u32),
        };
        match decoded {
            Some(character) => {
                out.push(character);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_pep503_page() {
        let page = parse(
            "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\"><title>Links for flask</title></head>\n<body><h1>Links for flask</h1>\n<a href=\"../../files/flask-3.1.3-py3-none-any.whl#sha256=f4bc\" data-requires-python=\"&gt;=3.9\" data-dist-info-metadata=\"sha256=aa\">flask-3.1.3-py3-none-any.whl</a><br>\n<A HREF='/x/flask-0.1.tar.gz' data-yanked>flask-0.1.tar.gz</A>\n<!-- <a href=\"commented.whl\">no</a> -->\n<a href=bare.whl>bare</a></body></html>",
        );
        assert_eq!(page.anchors.len(), 3);
        assert_eq!(
            page.anchors[0].get("href"),
            Some("../../files/flask-3.1.3-py3-none-any.whl#sha256=f4bc")
        );
        assert_eq!(page.anchors[0].get("data-requires-python"), Some(">=3.9"));
        assert_eq!(page.anchors[1].get("href"), Some("/x/flask-0.1.tar.gz"));
        assert_eq!(page.anchors[1].get("data-yanked"), Some(""));
        assert_eq!(page.anchors[2].get("href"), Some("bare.whl"));
        assert_eq!(page.base, None);
    }

    #[test]
    fn ok_base_script_and_references() {
        let page = parse(
            "<base href=\"https://files.example/root/\"><script>var a = '<a href=\"no\">';</script><a href=\"a&amp;b&#x2F;c&#47;d&bogus;\">x</a>",
        );
        assert_eq!(page.base.as_deref(), Some("https://files.example/root/"));
        assert_eq!(page.anchors.len(), 1);
        assert_eq!(page.anchors[0].get("href"), Some("a&b/c/d&bogus;"));
    }

    #[test]
    fn ok_truncated_page_does_not_panic() {
        for html in [
            "<a href=\"x",
            "<a href=",
            "<a",
            "<",
            "<!-- x",
            "&",
            "<a href='&#xFFFFFFFF;'>",
        ] {
            let _ = parse(html);
        }
    }

    #[test]
    fn ok_no_panic_on_hostile_input() {
        let seeds = [
            include_str!("../../tests/data/robust/simple-alpha.html"),
            include_str!("../../tests/data/robust/simple-index.html"),
        ];
        crate::lock::testing::assert_no_panic("index HTML", seeds, 3000, |text| {
            let page = parse(text);
            for anchor in &page.anchors {
                let _ = anchor.get("href");
            }
        });
    }
}
