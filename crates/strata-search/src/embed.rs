//! Sentence embeddings in-process: all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions)
//! loaded from a folder (`--model DIR`: `config.json`, `tokenizer.json`,
//! `model.safetensors`) and run on the CPU with candle; a text's vector is the mean of
//! its token vectors (padding left out), scaled to length 1, as sentence-transformers
//! computes it, so that the dot product of two vectors is their cosine similarity.
//! Nothing is downloaded: a missing model is an error that says where to get one.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};

use crate::wordpiece::WordPiece;
use crate::{Error, Result};

/// Tokens per text, as the model was trained (sentence-transformers' max_seq_length).
const MAX_TOKENS: usize = 256;
/// Texts per forward pass.
const BATCH: usize = 32;

/// A loaded model.
pub struct Embedder {
    model: BertModel,
    words: WordPiece,
    device: Device,
    /// What identifies the model (its config and weights' size): vectors made by
    /// another are not mixed with its own.
    pub digest: String,
    pub dims: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("digest", &self.digest)
            .finish()
    }
}

fn model_error(dir: &Path, problem: String) -> Error {
    Error::Model {
        dir: dir.to_owned(),
        problem,
    }
}

impl Embedder {
    /// Loads the model in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let file = |name: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(model_error(dir, format!("it has no {name}")))
            }
        };
        let config_path = file("config.json")?;
        let weights = file("model.safetensors")?;
        let words = WordPiece::load(&file("tokenizer.json")?).map_err(|e| model_error(dir, e))?;
        let config_text =
            std::fs::read_to_string(&config_path).map_err(|e| model_error(dir, e.to_string()))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|e| model_error(dir, format!("config.json is not a BERT config: {e}")))?;
        let dims = serde_json::from_str::<serde_json::Value>(&config_text)
            .ok()
            .and_then(|v| v["hidden_size"].as_u64())
            .unwrap_or(384) as usize;
        let device = Device::Cpu;
        let bytes = std::fs::read(&weights).map_err(|e| model_error(dir, e.to_string()))?;
        let digest = crate::index::digest(&format!("{config_text}\n{}", bytes.len()));
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)
            .map_err(|e| model_error(dir, format!("model.safetensors: {e}")))?;
        let model = BertModel::load(vb, &config)
            .map_err(|e| model_error(dir, format!("the weights are not this BERT's: {e}")))?;
        Ok(Embedder {
            model,
            words,
            device,
            digest,
            dims,
        })
    }

    /// The vectors of `texts`, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            out.extend(
                self.batch(chunk)
                    .map_err(|e| Error::Search(format!("embedding: {e}")))?,
            );
        }
        Ok(out)
    }

    fn batch(&self, texts: &[&str]) -> candle_core::Result<Vec<Vec<f32>>> {
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.words.encode(t, MAX_TOKENS))
            .collect();
        let len = ids.iter().map(Vec::len).max().unwrap_or(2);
        let mut flat = Vec::with_capacity(ids.len() * len);
        let mut mask = Vec::with_capacity(ids.len() * len);
        for row in &ids {
            flat.extend(
                row.iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, len - row.len())),
            );
            mask.extend(
                std::iter::repeat_n(1u32, row.len()).chain(std::iter::repeat_n(0, len - row.len())),
            );
        }
        let shape = (ids.len(), len);
        let input = Tensor::from_vec(flat, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let types = input.zeros_like()?;
        let hidden = self.model.forward(&input, &types, Some(&mask))?;
        // Mean over the real tokens, then length 1.
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&m)?.sum(1)?;
        let counts = m.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        mean.broadcast_div(&norm)?.to_vec2::<f32>()
    }
}

/// The dot product (the cosine similarity of two length-1 vectors).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
