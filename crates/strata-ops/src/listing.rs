//! Directory-style views of the keyspace: one level with child counts (`strata ls`)
//! and the whole subtree as an indented tree (`strata tree`).
//!
//! Both read at one revision. `ls` reads the level's keys in pages (keys only) and
//! skips over a child's subtree that runs past a page with one count, so a level
//! costs a few reads per page of children, not one per key. Owns the grouping into
//! levels; printing is the CLI's.

use crate::error::{scan, Result};
use strata_core::key::prefix_end;
use strata_core::model::*;
use strata_core::store::Store;

/// One child of a listed prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    /// The child's segment, as stored (escaped).
    pub name: String,
    /// The full key of the child (`prefix` + `name`).
    pub key: String,
    /// The child itself holds a value (it is a key, not only a directory).
    pub value: Option<Vec<u8>>,
    /// How many keys lie below it (`name/…`).
    pub descendants: i64,
}

/// Normalises a listing prefix: `""` and `/` are the root; others get a trailing `/`.
pub fn dir_prefix(prefix: &str) -> String {
    match prefix {
        "" => "/".into(),
        p if p.ends_with('/') => p.into(),
        p => format!("{p}/"),
    }
}

/// Lists the children of `prefix` (one level), with the number of keys below each.
/// Returns the revision read and the children in key order.
pub async fn list_children<S: Store>(store: &S, prefix: &str) -> Result<(i64, Vec<Child>)> {
    let page = list_page(store, prefix, None, 0, usize::MAX).await?;
    Ok((page.revision, page.children))
}

/// One page of a level's children (see [`list_page`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    /// The revision read.
    pub revision: i64,
    /// The children, in key order.
    pub children: Vec<Child>,
    /// Where the next page starts, when there are more children.
    pub next: Option<Vec<u8>>,
}

/// Keys read per request while listing a level (keys only, no values).
const READ: i64 = 4096;

/// At most `limit` children of `prefix`, from `cursor` (a page's `next`; `None`: the
/// first) at `revision` (0: the latest), so that a level with a million children is
/// read a page at a time, never the whole subtree below it.
///
/// The level is read in pages of 4,096 keys (keys only): a child whose keys the
/// page holds is counted from it, one that runs past the page's end is counted with
/// one count read and skipped, and a child that is a key gets its value with a point
/// read. So a page of children costs a few reads, whatever the store: this matters on
/// etcd, which walks the rest of the range on every read with a limit (a read per
/// child there cost a scan of the level each). A key `name` and the keys below
/// `name/` that a page boundary separates show as two children.
pub async fn list_page<S: Store>(
    store: &S,
    prefix: &str,
    cursor: Option<Vec<u8>>,
    revision: i64,
    limit: usize,
) -> Result<ListPage> {
    list_reading(store, prefix, cursor, revision, limit, READ).await
}

/// [`list_page`], reading `read` keys per request.
async fn list_reading<S: Store>(
    store: &S,
    prefix: &str,
    cursor: Option<Vec<u8>>,
    revision: i64,
    limit: usize,
    read: i64,
) -> Result<ListPage> {
    let prefix = dir_prefix(prefix);
    let end = prefix_end(prefix.as_bytes());
    let mut cursor = cursor
        .filter(|c| c.starts_with(prefix.as_bytes()))
        .unwrap_or_else(|| prefix.as_bytes().to_vec());
    let mut revision = revision;
    let mut children: Vec<Child> = Vec::new();
    'reads: loop {
        let req = RangeRequest::new(KeySpan::Range {
            start: cursor.clone(),
            end: end.clone(),
        })
        .at_revision(revision)
        .with_limit(read)
        .keys_only();
        let resp = store.range(req).await?;
        revision = resp.revision;
        let (keys, more) = (resp.kvs, resp.more);
        if keys.is_empty() {
            break;
        }
        let mut i = 0;
        while i < keys.len() {
            if children.len() >= limit {
                return Ok(ListPage {
                    revision,
                    children,
                    next: Some(cursor),
                });
            }
            let key = &keys[i].key;
            let rest = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            match rest.split_once('/') {
                None => {
                    let value = store
                        .range(RangeRequest::new(KeySpan::key(key.clone())).at_revision(revision))
                        .await?
                        .kvs
                        .into_iter()
                        .next()
                        .map(|kv| kv.value)
                        .unwrap_or_default();
                    cursor = key.clone();
                    cursor.push(0);
                    children.push(Child {
                        key: format!("{prefix}{rest}"),
                        name: rest,
                        value: Some(value),
                        descendants: 0,
                    });
                    i += 1;
                }
                Some((name, _)) => {
                    let sub = format!("{prefix}{name}/");
                    let here = keys[i..]
                        .iter()
                        .take_while(|kv| kv.key.starts_with(sub.as_bytes()))
                        .count();
                    // Its keys may run on past this page: count them all at once.
                    let count = if i + here == keys.len() && more {
                        store
                            .range(
                                RangeRequest::new(KeySpan::prefix(sub.as_bytes()))
                                    .at_revision(revision)
                                    .count_only(),
                            )
                            .await?
                            .count
                    } else {
                        here as i64
                    };
                    // A key `name` and keys below `name/` may be separated by siblings
                    // such as `name-x` (`-` sorts before `/`): merge them into one child.
                    match children.iter_mut().rev().find(|c| c.name == name) {
                        Some(child) => child.descendants = count,
                        None => children.push(Child {
                            name: name.to_owned(),
                            key: format!("{prefix}{name}"),
                            value: None,
                            descendants: count,
                        }),
                    }
                    match prefix_end(sub.as_bytes()) {
                        Some(next) => cursor = next,
                        None => break 'reads,
                    }
                    i += here;
                }
            }
        }
        if !more {
            break;
        }
    }
    Ok(ListPage {
        revision,
        children,
        next: None,
    })
}

/// One line of a tree view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeLine {
    /// Nesting level below the listed prefix (0 = directly below).
    pub depth: usize,
    /// The segment (with a trailing `/` for a directory line).
    pub label: String,
    /// The value, for a key line.
    pub value: Option<Vec<u8>>,
}

/// Walks every key under `prefix` at one revision, calling `emit` for each tree line
/// in order: a directory line the first time a level is entered, then key lines.
/// Memory stays bounded by the page size and the depth.
pub async fn walk_tree<S: Store>(
    store: &S,
    prefix: &str,
    mut emit: impl FnMut(TreeLine) -> Result<()>,
) -> Result<i64> {
    let prefix = dir_prefix(prefix);
    let mut open: Vec<String> = Vec::new();
    scan(store, KeySpan::prefix(prefix.as_bytes()), 0, |page| {
        for kv in page {
            let rest = String::from_utf8_lossy(&kv.key[prefix.len()..]).into_owned();
            let segments: Vec<&str> = rest.split('/').collect();
            let (dirs, leaf) = segments.split_at(segments.len() - 1);
            let shared = open.iter().zip(dirs).take_while(|(a, b)| a == *b).count();
            open.truncate(shared);
            for (depth, dir) in dirs.iter().enumerate().skip(shared) {
                emit(TreeLine {
                    depth,
                    label: format!("{dir}/"),
                    value: None,
                })?;
                open.push((*dir).to_owned());
            }
            emit(TreeLine {
                depth: dirs.len(),
                label: leaf[0].to_owned(),
                value: Some(kv.value),
            })?;
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::MemStore;

    async fn seeded() -> MemStore {
        let s = MemStore::new();
        for k in [
            "/a/x/1",
            "/a/x/2",
            "/a/y",
            "/a/y/z",
            "/b",
            "/a/x%2Fy/3",
            "/a/y-b",
        ] {
            s.put(k.as_bytes(), b"v").await.unwrap();
        }
        s
    }

    #[tokio::test]
    async fn lists_one_level_with_counts() {
        let s = seeded().await;
        let (_, children) = list_children(&s, "/a").await.unwrap();
        let got: Vec<(&str, bool, i64)> = children
            .iter()
            .map(|c| (c.name.as_str(), c.value.is_some(), c.descendants))
            .collect();
        // Bytewise key order: `%` (0x25) sorts before `/` (0x2F).
        assert_eq!(
            got,
            vec![
                ("x%2Fy", false, 1),
                ("x", false, 2),
                ("y", true, 1),
                ("y-b", true, 0)
            ]
        );
        let (_, root) = list_children(&s, "/").await.unwrap();
        assert_eq!(
            root.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert!(list_children(&s, "/nothing").await.unwrap().1.is_empty());
    }

    #[tokio::test]
    async fn any_read_size_lists_the_same_level() {
        let s = seeded().await;
        for k in ["/a/x/3", "/a/x/4", "/a/z/1", "/a/zz"] {
            s.put(k.as_bytes(), b"w").await.unwrap();
        }
        let (_, whole) = list_children(&s, "/a").await.unwrap();
        for read in 1..=6 {
            let page = list_reading(&s, "/a", None, 0, usize::MAX, read)
                .await
                .unwrap();
            assert_eq!(page.children, whole, "reading {read} keys at a time");
            // Pages of two children, resumed from each page's cursor (a key and its
            // subtree that a page boundary separates are two children: merged here).
            let (mut all, mut cursor): (Vec<Child>, _) = (Vec::new(), None);
            loop {
                let p = list_reading(&s, "/a", cursor, page.revision, 2, read)
                    .await
                    .unwrap();
                for ch in p.children {
                    match all.iter_mut().find(|c| c.name == ch.name) {
                        Some(c) => {
                            c.value = c.value.take().or(ch.value);
                            c.descendants = c.descendants.max(ch.descendants);
                        }
                        None => all.push(ch),
                    }
                }
                match p.next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            assert_eq!(all, whole, "pages of 2, reading {read}");
        }
        assert_eq!(whole.iter().find(|c| c.name == "x").unwrap().descendants, 4);
        assert_eq!(
            whole
                .iter()
                .find(|c| c.name == "zz")
                .unwrap()
                .value
                .as_deref(),
            Some(&b"w"[..])
        );
    }

    #[tokio::test]
    async fn tree_lines_open_each_level_once() {
        let s = seeded().await;
        let mut lines = Vec::new();
        walk_tree(&s, "/", |l| {
            lines.push(format!("{}{}", "  ".repeat(l.depth), l.label));
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(
            lines,
            vec![
                "a/", "  x%2Fy/", "    3", "  x/", "    1", "    2", "  y", "  y-b", "  y/",
                "    z", "b"
            ]
        );
    }
}
