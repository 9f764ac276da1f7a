//! How text becomes words, for the index and for queries alike: a word is a run of
//! letters, digits and the joiners that hold identifiers together (`.`, `@`, `+`,
//! `-`, `_`, `:`, `/`), trimmed of joiners at its ends. Each word is emitted whole and,
//! when it has joiners, also as its parts, all at the word's position, so that
//! `10.20.0.20`, `erin+vpn@example.org`, `core-3` and a UUID are each found whole and by
//! any part (`20`, `erin`, `vpn`, `core`), while phrases of whole words still work.
//! Words are lower-cased and folded to ASCII (`Zoë Ångström` is found as `zoe
//! angstrom` too); letters of any script are letters (`李`).

use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The name the analyzer is registered under in an index.
pub const ANALYZER: &str = "strata_words";

fn is_joiner(c: char) -> bool {
    matches!(c, '.' | '@' | '+' | '-' | '_' | ':' | '/')
}

/// The tokenizer (see the module docs); [`analyzer`] adds the filters.
#[derive(Clone, Debug, Default)]
pub struct WordParts;

/// The tokens of one text.
#[derive(Debug)]
pub struct WordPartsStream {
    tokens: Vec<Token>,
    cursor: usize,
}

impl Tokenizer for WordParts {
    type TokenStream<'a> = WordPartsStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordPartsStream {
        let mut tokens = Vec::new();
        let mut position = 0;
        let mut start = None;
        let ends = text
            .char_indices()
            .chain(std::iter::once((text.len(), ' ')));
        for (i, c) in ends {
            if c.is_alphanumeric() || is_joiner(c) {
                start.get_or_insert(i);
            } else if let Some(s) = start.take() {
                if push_word(text, s, i, position, &mut tokens) {
                    position += 1;
                }
            }
        }
        WordPartsStream { tokens, cursor: 0 }
    }
}

/// Pushes the word `text[s..e]` whole, then its parts; false if it is only joiners.
fn push_word(text: &str, s: usize, e: usize, position: usize, out: &mut Vec<Token>) -> bool {
    let raw = &text[s..e];
    let word = raw.trim_matches(is_joiner);
    if word.is_empty() {
        return false;
    }
    let from = s + (raw.len() - raw.trim_start_matches(is_joiner).len());
    let to = from + word.len();
    let token = |a: usize, b: usize| Token {
        offset_from: a,
        offset_to: b,
        position,
        text: text[a..b].to_owned(),
        position_length: 1,
    };
    out.push(token(from, to));
    if word.contains(is_joiner) {
        let mut part = from;
        let bounds = word
            .char_indices()
            .map(|(i, c)| (from + i, c))
            .chain(std::iter::once((to, '.')));
        for (i, c) in bounds {
            if is_joiner(c) {
                if i > part {
                    out.push(token(part, i));
                }
                part = i + c.len_utf8();
            }
        }
    }
    true
}

impl TokenStream for WordPartsStream {
    fn advance(&mut self) -> bool {
        if self.cursor < self.tokens.len() {
            self.cursor += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.cursor - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.cursor - 1]
    }
}

/// The analyzer: [`WordParts`], words over 100 bytes dropped, lower-cased, folded.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(WordParts)
        .filter(RemoveLongFilter::limit(100))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// One word of a text: its position, whether it is a part of a longer word, its
/// normalized text and its byte range in the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub position: usize,
    pub part: bool,
    pub text: String,
    pub range: std::ops::Range<usize>,
}

/// The words of `text` as the index sees them.
pub fn words(text: &str) -> Vec<Word> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out: Vec<Word> = Vec::new();
    while let Some(t) = stream.next() {
        let part = out.last().is_some_and(|w: &Word| w.position == t.position);
        out.push(Word {
            position: t.position,
            part,
            text: t.text.clone(),
            range: t.offset_from..t.offset_to,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<(usize, bool, String)> {
        words(text)
            .into_iter()
            .map(|w| (w.position, w.part, w.text))
            .collect()
    }

    #[test]
    fn identifiers_are_words_whole_and_by_their_parts() {
        let t = |p, part, s: &str| (p, part, s.to_owned());
        assert_eq!(
            texts("node 10.20.0.20, owner erin+vpn@example.org."),
            [
                t(0, false, "node"),
                t(1, false, "10.20.0.20"),
                t(1, true, "10"),
                t(1, true, "20"),
                t(1, true, "0"),
                t(1, true, "20"),
                t(2, false, "owner"),
                t(3, false, "erin+vpn@example.org"),
                t(3, true, "erin"),
                t(3, true, "vpn"),
                t(3, true, "example"),
                t(3, true, "org"),
            ]
        );
        assert_eq!(texts("core-3")[0], t(0, false, "core-3"));
        assert_eq!(
            texts("Zoë Ångström, Erin 李"),
            [
                t(0, false, "zoe"),
                t(1, false, "angstrom"),
                t(2, false, "erin"),
                t(3, false, "李")
            ]
        );
        let v6 = texts("2a01:4f8:c0c:1::78");
        assert_eq!(v6[0], t(0, false, "2a01:4f8:c0c:1::78"));
        assert!(v6.contains(&t(0, true, "78")));
        // Byte ranges point into the original text (for marking matches).
        let w = words("Grüße, Ökö");
        assert_eq!(&"Grüße, Ökö"[w[1].range.clone()], "Ökö");
        assert!(texts("-- / ..").is_empty());
    }
}
