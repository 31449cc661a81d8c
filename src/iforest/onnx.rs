//! Importing an isolation forest written as one ONNX `ai.onnx.ml` TreeEnsembleRegressor node (as
//! `models/iforest/make_reference.py` writes scikit-learn's): a small protobuf reader for the few
//! ONNX messages involved, no ONNX Runtime needed.
//!
//! The node must output, per row, the sum over trees of the row's path length (leaf weights =
//! depth + c(points at the leaf)), with `BRANCH_LEQ` splits, `SUM` aggregation and no post
//! transform. ψ, the feature names and the threshold come from the model's metadata
//! (`max_samples`, `features`, `offset` = scikit-learn's `offset_`) or from the caller.

use super::features::Feature;
use super::model::{IForestModel, Training};
use std::collections::{BTreeMap, HashMap};
use vigil_kernels::iforest::{Forest, Node};

/// A protobuf field: its number and its value.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// The fields of one protobuf message, in order.
fn fields(mut b: &[u8]) -> Result<Vec<(u32, Value<'_>)>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let number = u32::try_from(key >> 3).map_err(|_| "bad field number".to_string())?;
        let v = match key & 7 {
            0 => Value::Varint(varint(&mut b)?),
            1 => {
                take(&mut b, 8)?;
                Value::Fixed64
            }
            2 => {
                let n = usize::try_from(varint(&mut b)?).map_err(|_| "length too large")?;
                Value::Bytes(take(&mut b, n)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(
                take(&mut b, 4)?.try_into().map_err(|_| "short")?,
            )),
            w => return Err(format!("unsupported protobuf wire type {w}")),
        };
        out.push((number, v));
    }
    Ok(out)
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if b.len() < n {
        return Err("truncated protobuf".into());
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

fn varint(b: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *take(b, 1)?.first().ok_or("truncated varint")?;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn text(v: Value<'_>) -> Result<String, String> {
    match v {
        Value::Bytes(b) => {
            String::from_utf8(b.to_vec()).map_err(|_| "a string is not UTF-8".into())
        }
        _ => Err("expected a string".into()),
    }
}

/// One ONNX attribute's payload.
#[derive(Debug, Default)]
struct Attribute {
    ints: Vec<i64>,
    floats: Vec<f32>,
    strings: Vec<String>,
    s: Option<String>,
    i: Option<i64>,
}

fn attribute(b: &[u8]) -> Result<(String, Attribute), String> {
    let mut name = String::new();
    let mut a = Attribute::default();
    for (n, v) in fields(b)? {
        match (n, v) {
            (1, v) => name = text(v)?,
            (3, Value::Varint(i)) => a.i = Some(i as i64),
            (4, v) => a.s = Some(text(v)?),
            (7, Value::Fixed32(f)) => a.floats.push(f32::from_bits(f)),
            (7, Value::Bytes(p)) => {
                if p.len() % 4 != 0 {
                    return Err("packed floats of odd length".into());
                }
                a.floats.extend(
                    p.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
            (8, Value::Varint(i)) => a.ints.push(i as i64),
            (8, Value::Bytes(mut p)) => {
                while !p.is_empty() {
                    a.ints.push(varint(&mut p)? as i64);
                }
            }
            (9, v) => a.strings.push(text(v)?),
            _ => {}
        }
    }
    Ok((name, a))
}

/// What the importer found in the file.
struct Parsed {
    attributes: HashMap<String, Attribute>,
    metadata: BTreeMap<String, String>,
}

fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let mut graph = None;
    let mut metadata = BTreeMap::new();
    for (n, v) in fields(bytes)? {
        match (n, v) {
            (7, Value::Bytes(g)) => graph = Some(g),
            (14, Value::Bytes(kv)) => {
                let (mut k, mut val) = (String::new(), String::new());
                for (n, v) in fields(kv)? {
                    match n {
                        1 => k = text(v)?,
                        2 => val = text(v)?,
                        _ => {}
                    }
                }
                metadata.insert(k, val);
            }
            _ => {}
        }
    }
    let graph = graph.ok_or("no graph: not an ONNX model")?;
    let nodes: Vec<&[u8]> = fields(graph)?
        .into_iter()
        .filter_map(|(n, v)| match (n, v) {
            (1, Value::Bytes(b)) => Some(b),
            _ => None,
        })
        .collect();
    let [node] = nodes.as_slice() else {
        return Err(format!(
            "the graph has {} nodes; expected one TreeEnsembleRegressor",
            nodes.len()
        ));
    };
    let mut op = String::new();
    let mut domain = String::new();
    let mut attributes = HashMap::new();
    for (n, v) in fields(node)? {
        match n {
            4 => op = text(v)?,
            7 => domain = text(v)?,
            5 => {
                if let Value::Bytes(b) = v {
                    let (name, a) = attribute(b)?;
                    attributes.insert(name, a);
                }
            }
            _ => {}
        }
    }
    if op != "TreeEnsembleRegressor" || domain != "ai.onnx.ml" {
        return Err(format!(
            "the node is {domain}:{op}; expected ai.onnx.ml:TreeEnsembleRegressor"
        ));
    }
    Ok(Parsed {
        attributes,
        metadata,
    })
}

/// What the caller adds to (or checks against) the file's metadata.
#[derive(Debug, Default, Clone)]
pub struct ImportOptions {
    /// Feature names in input order; must equal the file's `features` metadata if it has one.
    pub features: Option<Vec<String>>,
    /// ψ, if the file has no `max_samples`.
    pub sample_size: Option<usize>,
    /// Alert threshold; default `-offset` from the file's metadata.
    pub threshold: Option<f32>,
}

/// Imports `bytes` (an ONNX file) as a Vigil isolation-forest model.
pub fn import(bytes: &[u8], source: &str, opts: &ImportOptions) -> Result<IForestModel, String> {
    let p = parse(bytes)?;
    let attr = |name: &str| {
        p.attributes
            .get(name)
            .ok_or_else(|| format!("the TreeEnsembleRegressor has no {name}"))
    };
    let s_attr = |name: &str, want: &str| -> Result<(), String> {
        match p.attributes.get(name).and_then(|a| a.s.as_deref()) {
            None => Ok(()),
            Some(v) if v == want => Ok(()),
            Some(v) => Err(format!("{name} is {v}; only {want} is supported")),
        }
    };
    s_attr("aggregate_function", "SUM")?;
    s_attr("post_transform", "NONE")?;
    if p.attributes.contains_key("nodes_values_as_tensor") {
        return Err("nodes_values_as_tensor is not supported (write nodes_values)".into());
    }
    if let Some(b) = p.attributes.get("base_values") {
        if b.floats.iter().any(|&v| v != 0.0) {
            return Err("base_values must be 0".into());
        }
    }
    if let Some(m) = p.attributes.get("nodes_missing_value_tracks_true") {
        if m.ints.iter().any(|&v| v != 0) {
            return Err("nodes_missing_value_tracks_true must be 0 (Vigil sends NaN right)".into());
        }
    }
    let tree_ids = &attr("nodes_treeids")?.ints;
    let node_ids = &attr("nodes_nodeids")?.ints;
    let feature_ids = &attr("nodes_featureids")?.ints;
    let values = &attr("nodes_values")?.floats;
    let modes = &attr("nodes_modes")?.strings;
    let trues = &attr("nodes_truenodeids")?.ints;
    let falses = &attr("nodes_falsenodeids")?.ints;
    let n = tree_ids.len();
    if [
        node_ids.len(),
        feature_ids.len(),
        values.len(),
        modes.len(),
        trues.len(),
        falses.len(),
    ]
    .iter()
    .any(|&l| l != n)
    {
        return Err("the nodes_* attributes differ in length".into());
    }
    let t_trees = &attr("target_treeids")?.ints;
    let t_nodes = &attr("target_nodeids")?.ints;
    let t_weights = &attr("target_weights")?.floats;
    if t_nodes.len() != t_trees.len() || t_weights.len() != t_trees.len() {
        return Err("the target_* attributes differ in length".into());
    }
    let mut weight: HashMap<(i64, i64), f32> = HashMap::new();
    for ((&t, &nd), &w) in t_trees.iter().zip(t_nodes).zip(t_weights) {
        *weight.entry((t, nd)).or_insert(0.0) += w;
    }

    // Nodes by tree, then re-numbered breadth-first from each tree's root (the node nobody points at).
    let mut by_tree: BTreeMap<i64, HashMap<i64, usize>> = BTreeMap::new();
    for i in 0..n {
        if by_tree
            .entry(tree_ids[i])
            .or_default()
            .insert(node_ids[i], i)
            .is_some()
        {
            return Err(format!(
                "tree {} has node {} twice",
                tree_ids[i], node_ids[i]
            ));
        }
    }
    let names: Vec<String> = match (&opts.features, p.metadata.get("features")) {
        (Some(given), Some(meta)) => {
            let meta: Vec<String> = meta.split(',').map(str::to_string).collect();
            if *given != meta {
                let what = if given.len() == meta.len() && given.iter().all(|g| meta.contains(g)) {
                    "reordered"
                } else {
                    "different"
                };
                return Err(format!(
                    "features {given:?} are {what} from the model's {meta:?}"
                ));
            }
            meta
        }
        (Some(given), None) => given.clone(),
        (None, Some(meta)) => meta.split(',').map(str::to_string).collect(),
        (None, None) => {
            return Err("the model names no features: pass --features".into());
        }
    };
    let features = names
        .iter()
        .map(|s| Feature::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(f) = features
        .iter()
        .enumerate()
        .find_map(|(i, f)| features[..i].contains(f).then_some(f))
    {
        return Err(format!("feature {f} appears twice"));
    }
    let mut trees = Vec::with_capacity(by_tree.len());
    for (&t, ids) in &by_tree {
        let mut pointed = std::collections::HashSet::new();
        for &i in ids.values() {
            if modes[i] != "LEAF" {
                pointed.insert(trues[i]);
                pointed.insert(falses[i]);
            }
        }
        let roots: Vec<i64> = ids
            .keys()
            .copied()
            .filter(|k| !pointed.contains(k))
            .collect();
        let [root] = roots.as_slice() else {
            return Err(format!("tree {t} has {} roots", roots.len()));
        };
        let mut order = vec![*root];
        let mut nodes = Vec::with_capacity(ids.len());
        let mut k = 0;
        while k < order.len() {
            let id = order[k];
            k += 1;
            let i = *ids
                .get(&id)
                .ok_or_else(|| format!("tree {t} points at missing node {id}"))?;
            match modes[i].as_str() {
                "LEAF" => nodes.push(Node::Leaf {
                    path_length: *weight
                        .get(&(t, id))
                        .ok_or_else(|| format!("tree {t} leaf {id} has no weight"))?,
                }),
                "BRANCH_LEQ" => {
                    let f = feature_ids[i];
                    if f < 0 || f as usize >= features.len() {
                        return Err(format!(
                            "tree {t} node {id} tests feature {f} of {}",
                            features.len()
                        ));
                    }
                    let left = order.len() as u32;
                    order.push(trues[i]);
                    order.push(falses[i]);
                    nodes.push(Node::Split {
                        feature: f as u32,
                        threshold: values[i],
                        left,
                        right: left + 1,
                    });
                }
                m => return Err(format!("tree {t} node {id}: mode {m} is not supported")),
            }
            if order.len() > ids.len() {
                return Err(format!("tree {t} is not a tree"));
            }
        }
        trees.push(nodes);
    }
    let sample_size = match (opts.sample_size, p.metadata.get("max_samples")) {
        (Some(s), _) => s,
        (None, Some(m)) => m
            .parse()
            .map_err(|_| format!("max_samples {m:?} is not a number"))?,
        (None, None) => return Err("the model has no max_samples: pass --sample".into()),
    };
    let forest = Forest::new(features.len(), sample_size, &trees).map_err(|e| e.0)?;
    let threshold = match (opts.threshold, p.metadata.get("offset")) {
        (Some(t), _) => t,
        (None, Some(o)) => -o
            .parse::<f32>()
            .map_err(|_| format!("offset {o:?} is not a number"))?,
        (None, None) => return Err("the model has no offset: pass --threshold".into()),
    };
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(format!("threshold {threshold} is not in (0, 1]"));
    }
    Ok(IForestModel {
        training: Training {
            method: format!(
                "imported from ONNX TreeEnsembleRegressor{}",
                p.metadata
                    .get("trained_on")
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default()
            ),
            sources: vec![source.to_string()],
            rows: 0,
            seed: None,
            contamination: None,
            // The training data are not in the file.
            summary: Vec::new(),
        },
        features,
        forest,
        threshold,
    })
}
