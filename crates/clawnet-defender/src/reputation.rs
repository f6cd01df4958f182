//! Optional reputation lookups of URLs and file hashes against a
//! VirusTotal-compatible HTTP API (v3).
//!
//! * `GET {base}/api/v3/urls/{id}` where `id` is the unpadded base64url
//!   encoding of the URL;
//! * `GET {base}/api/v3/files/{sha256}`;
//!
//! both with the header `x-apikey: KEY`. A 200 answer's
//! `data.attributes.last_analysis_stats` holds `malicious` and `suspicious`
//! counts; 404 means unknown. A timeout, a network error or any other non-2xx
//! answer gives [`Reputation::Unknown`]: lookups never block delivery and never
//! error. Answers are cached (bounded, with a TTL; failures only briefly).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use parking_lot::Mutex;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::Signal;

/// How long a failed lookup (timeout, network error, unexpected status) is
/// remembered as `Unknown`.
const ERROR_TTL: Duration = Duration::from_secs(30);
/// The most lookups [`ReputationClient::signals`] makes for one text.
const MAX_LOOKUPS: usize = 8;
/// Longest URL looked up.
const MAX_URL_LEN: usize = 2048;

/// Where and how to look reputations up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReputationConfig {
    /// Base URL of the API, e.g. `https://www.virustotal.com`.
    pub base_url: String,
    /// API key sent as `x-apikey`. When empty, no lookups are made and every
    /// answer is `Unknown`.
    pub api_key: String,
    /// Per-lookup time limit (default 1500 ms).
    pub timeout: Duration,
    /// How long an answer is cached (default 1 h).
    pub cache_ttl: Duration,
    /// The most cached answers (default 10 000; 0 disables the cache).
    pub cache_max: usize,
}

impl Default for ReputationConfig {
    fn default() -> Self {
        Self {
            base_url: "https://www.virustotal.com".to_string(),
            api_key: String::new(),
            timeout: Duration::from_millis(1500),
            cache_ttl: Duration::from_secs(3600),
            cache_max: 10_000,
        }
    }
}

/// What the reputation service says about a URL or file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reputation {
    /// Analysed, no engine flags it.
    Clean,
    /// Some engines find it suspicious, none malicious.
    Suspicious,
    /// At least one engine flags it malicious.
    Malicious,
    /// Not known to the service, or the lookup failed.
    Unknown,
}

#[derive(Debug)]
struct Entry {
    reputation: Reputation,
    expires: Instant,
    seq: u64,
}

#[derive(Debug, Default)]
struct Cache {
    map: HashMap<String, Entry>,
    seq: u64,
}

impl Cache {
    fn get(&self, key: &str, now: Instant) -> Option<Reputation> {
        self.map
            .get(key)
            .filter(|e| e.expires > now)
            .map(|e| e.reputation)
    }

    fn insert(&mut self, key: String, reputation: Reputation, ttl: Duration, max: usize) {
        if max == 0 {
            return;
        }
        let now = Instant::now();
        if self.map.len() >= max && !self.map.contains_key(&key) {
            self.map.retain(|_, e| e.expires > now);
            if self.map.len() >= max {
                // Evict the oldest entries (at least one, about 1/16 of them).
                let n = (max / 16).max(1).min(self.map.len());
                let mut seqs: Vec<u64> = self.map.values().map(|e| e.seq).collect();
                seqs.select_nth_unstable(n - 1);
                let cutoff = seqs[n - 1];
                self.map.retain(|_, e| e.seq > cutoff);
            }
        }
        self.seq += 1;
        self.map.insert(
            key,
            Entry {
                reputation,
                expires: now + ttl,
                seq: self.seq,
            },
        );
    }
}

/// A caching client for a VirusTotal-compatible API.
#[derive(Debug)]
pub struct ReputationClient {
    cfg: ReputationConfig,
    http: reqwest::Client,
    cache: Mutex<Cache>,
}

#[derive(Deserialize)]
struct Answer {
    data: AnswerData,
}

#[derive(Deserialize)]
struct AnswerData {
    attributes: AnswerAttributes,
}

#[derive(Deserialize)]
struct AnswerAttributes {
    last_analysis_stats: Stats,
}

#[derive(Deserialize)]
struct Stats {
    #[serde(default)]
    malicious: u64,
    #[serde(default)]
    suspicious: u64,
}

impl ReputationClient {
    /// A client for `cfg` (no network activity until the first lookup).
    pub fn new(cfg: ReputationConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            cfg,
            http,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ReputationConfig {
        &self.cfg
    }

    /// Number of cached answers (expired ones included until evicted).
    pub fn cached(&self) -> usize {
        self.cache.lock().map.len()
    }

    /// Reputation of a URL.
    pub async fn url(&self, url: &str) -> Reputation {
        if url.len() > MAX_URL_LEN {
            return Reputation::Unknown;
        }
        let id = URL_SAFE_NO_PAD.encode(url.as_bytes());
        self.lookup(format!("url:{url}"), format!("api/v3/urls/{id}"))
            .await
    }

    /// Reputation of a file by its SHA-256 (64 hex digits).
    pub async fn file(&self, sha256: &str) -> Reputation {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Reputation::Unknown;
        }
        let sha = sha256.to_ascii_lowercase();
        self.lookup(format!("file:{sha}"), format!("api/v3/files/{sha}"))
            .await
    }

    async fn lookup(&self, key: String, path: String) -> Reputation {
        if self.cfg.api_key.is_empty() {
            return Reputation::Unknown;
        }
        if let Some(r) = self.cache.lock().get(&key, Instant::now()) {
            return r;
        }
        let url = format!("{}/{path}", self.cfg.base_url.trim_end_matches('/'));
        let request = self
            .http
            .get(url)
            .header("x-apikey", &self.cfg.api_key)
            .header("accept", "application/json")
            .send();
        let (reputation, ttl) = match tokio::time::timeout(self.cfg.timeout, async {
            let resp = request.await?;
            let status = resp.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Ok::<_, reqwest::Error>(Some(Reputation::Unknown));
            }
            if !status.is_success() {
                return Ok(None);
            }
            let answer: Answer = match resp.json().await {
                Ok(a) => a,
                Err(_) => return Ok(None),
            };
            let stats = answer.data.attributes.last_analysis_stats;
            Ok(Some(if stats.malicious > 0 {
                Reputation::Malicious
            } else if stats.suspicious > 0 {
                Reputation::Suspicious
            } else {
                Reputation::Clean
            }))
        })
        .await
        {
            Ok(Ok(Some(r))) => (r, self.cfg.cache_ttl),
            _ => (Reputation::Unknown, ERROR_TTL.min(self.cfg.cache_ttl)),
        };
        self.cache
            .lock()
            .insert(key, reputation, ttl, self.cfg.cache_max);
        reputation
    }

    /// Looks up the URLs and SHA-256 hashes found in `text` (at most 8
    /// lookups, concurrently) and returns signals for the bad ones:
    /// `reputation.malicious_url`, `reputation.suspicious_url`,
    /// `reputation.malicious_file`, `reputation.suspicious_file`.
    pub async fn signals(&self, text: &str) -> Vec<Signal> {
        let urls = extract_urls(text);
        let hashes = extract_sha256(text);
        let url_n = urls.len().min(MAX_LOOKUPS);
        let file_n = hashes.len().min(MAX_LOOKUPS - url_n);
        let url_futs = urls[..url_n].iter().map(|u| async move {
            let r = self.url(u).await;
            (r, true, u.as_str())
        });
        let file_futs = hashes[..file_n].iter().map(|h| async move {
            let r = self.file(h).await;
            (r, false, h.as_str())
        });
        let (url_res, file_res) = futures_util::future::join(
            futures_util::future::join_all(url_futs),
            futures_util::future::join_all(file_futs),
        )
        .await;
        url_res
            .into_iter()
            .chain(file_res)
            .filter_map(|(r, is_url, what)| {
                let (name, weight) = match (r, is_url) {
                    (Reputation::Malicious, true) => ("reputation.malicious_url", 0.9),
                    (Reputation::Suspicious, true) => ("reputation.suspicious_url", 0.5),
                    (Reputation::Malicious, false) => ("reputation.malicious_file", 0.9),
                    (Reputation::Suspicious, false) => ("reputation.suspicious_file", 0.5),
                    _ => return None,
                };
                Some(Signal {
                    name: name.to_string(),
                    weight,
                    evidence: crate::rules::excerpt(what),
                })
            })
            .collect()
    }
}

static URL_RE: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    Regex::new(r#"(?i)\bhttps?://[^\s<>"'`)\]}|\\^]+"#).expect("url regex compiles")
});
static SHA_RE: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    Regex::new(r"\b[0-9a-fA-F]{64}\b").expect("sha256 regex compiles")
});

/// The distinct `http(s)://` URLs in `text`, in order of appearance
/// (trailing punctuation trimmed).
pub fn extract_urls(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in URL_RE.find_iter(text) {
        let u = m
            .as_str()
            .trim_end_matches(['.', ',', ';', ':', '!', '?', '\'', '*']);
        if u.len() > "https://".len() && u.len() <= MAX_URL_LEN && !out.iter().any(|o| o == u) {
            out.push(u.to_string());
        }
    }
    out
}

/// The distinct SHA-256 hashes (64 hex digits, lowercased) in `text`, in
/// order of appearance.
pub fn extract_sha256(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in SHA_RE.find_iter(text) {
        let h = m.as_str().to_ascii_lowercase();
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts() {
        let t = "see https://a.example/x?y=1, and (http://b.example/p). hash \
                 E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855 \
                 https://a.example/x?y=1";
        assert_eq!(
            extract_urls(t),
            vec!["https://a.example/x?y=1", "http://b.example/p"]
        );
        assert_eq!(
            extract_sha256(t),
            vec!["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]
        );
    }

    #[test]
    fn cache_is_bounded() {
        let mut c = Cache::default();
        for i in 0..100 {
            c.insert(
                format!("k{i}"),
                Reputation::Clean,
                Duration::from_secs(60),
                32,
            );
            assert!(c.map.len() <= 32);
        }
        assert!(c.get("k99", Instant::now()).is_some());
        assert!(c.get("k0", Instant::now()).is_none());
    }
}
