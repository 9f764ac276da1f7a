//! The tokenizer of all-MiniLM-L6-v2 (BERT uncased), read from the model's
//! `tokenizer.json`: text cleaned (control characters dropped, white space made
//! spaces), CJK characters split apart, lower-cased with accents stripped (NFD, marks
//! dropped), split at white space and punctuation, then each word cut into the
//! longest vocabulary pieces from its start (`##` marks a piece that continues a
//! word; a word that cannot be cut is `[UNK]`). Owns only turning text into ids.

use std::collections::HashMap;
use std::path::Path;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Word pieces longer than this many characters are `[UNK]` (as BERT's).
const MAX_WORD_CHARS: usize = 100;

/// A vocabulary and its special tokens.
#[derive(Debug)]
pub struct WordPiece {
    vocab: HashMap<String, u32>,
    unk: u32,
    pub cls: u32,
    pub sep: u32,
}

impl WordPiece {
    /// Reads `model.vocab` of a `tokenizer.json` (a WordPiece model).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let vocab: HashMap<String, u32> = json["model"]["vocab"]
            .as_object()
            .ok_or_else(|| {
                format!(
                    "{}: no model.vocab (not a WordPiece tokenizer)",
                    path.display()
                )
            })?
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), u32::try_from(v.as_u64()?).ok()?)))
            .collect();
        let id = |t: &str| {
            vocab
                .get(t)
                .copied()
                .ok_or_else(|| format!("{}: the vocabulary has no {t}", path.display()))
        };
        Ok(WordPiece {
            unk: id("[UNK]")?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            vocab,
        })
    }

    /// The ids of `text`: `[CLS]`, at most `max - 2` pieces, `[SEP]`.
    pub fn encode(&self, text: &str, max: usize) -> Vec<u32> {
        let mut ids = vec![self.cls];
        'words: for word in basic_words(text) {
            for id in self.pieces(&word) {
                if ids.len() + 1 >= max {
                    break 'words;
                }
                ids.push(id);
            }
        }
        ids.push(self.sep);
        ids
    }

    fn pieces(&self, word: &str) -> Vec<u32> {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() > MAX_WORD_CHARS {
            return vec![self.unk];
        }
        let mut out = Vec::new();
        let mut start = 0;
        while start < chars.len() {
            let mut end = chars.len();
            let mut found = None;
            while start < end {
                let piece: String = chars[start..end].iter().collect();
                let piece = if start > 0 {
                    format!("##{piece}")
                } else {
                    piece
                };
                if let Some(&id) = self.vocab.get(&piece) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => out.push(id),
                None => return vec![self.unk],
            }
            start = end;
        }
        out
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || (!c.is_ascii() && !c.is_alphanumeric() && !c.is_whitespace())
}

/// BERT's basic tokenizer: the words and punctuation marks of `text`, lower-cased,
/// accents stripped.
fn basic_words(text: &str) -> Vec<String> {
    let mut spaced = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\0' || c == '\u{fffd}' || (c.is_control() && !c.is_whitespace()) {
            continue;
        }
        if c.is_whitespace() {
            spaced.push(' ');
        } else if is_cjk(c) {
            spaced.push(' ');
            spaced.push(c);
            spaced.push(' ');
        } else {
            spaced.push(c);
        }
    }
    let mut out = Vec::new();
    for word in spaced.split(' ').filter(|w| !w.is_empty()) {
        let folded: String = word
            .to_lowercase()
            .nfd()
            .filter(|c| !is_combining_mark(*c))
            .collect();
        let mut cur = String::new();
        for c in folded.chars() {
            if is_punctuation(c) {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(c.to_string());
            } else {
                cur.push(c);
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_as_bert_uncased_splits_them() {
        assert_eq!(
            basic_words("Zoë's  Ångström-café, 李四\tok"),
            ["zoe", "'", "s", "angstrom", "-", "cafe", ",", "李", "四", "ok"]
        );
    }

    #[test]
    fn pieces_are_the_longest_from_the_start() {
        let vocab: HashMap<String, u32> = [
            ("[UNK]", 0),
            ("[CLS]", 1),
            ("[SEP]", 2),
            ("un", 3),
            ("##aff", 4),
            ("##able", 5),
            ("aff", 6),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let wp = WordPiece {
            vocab,
            unk: 0,
            cls: 1,
            sep: 2,
        };
        assert_eq!(wp.encode("unaffable", 16), [1, 3, 4, 5, 2]);
        assert_eq!(wp.encode("unaffablex", 16), [1, 0, 2]);
        assert_eq!(wp.encode("un un un", 4), [1, 3, 3, 2]);
    }
}
