//! Every available path against the oracle over random forests and inputs, the paths against each
//! other, and training.

use super::train::{train, TrainParams};
use super::{average_path_length, oracle, Fetch, Forest, Node, Scorer};
use crate::isa::Isa;
use crate::rng::Rng;

/// A random tree of at most `max_depth` levels; children are placed after their parent in a random
/// (not breadth-first) order, so that flattening has work to do.
fn random_tree(rng: &mut Rng, f: usize, max_depth: u32) -> Vec<Node> {
    let mut nodes = vec![Node::Leaf { path_length: 0.0 }];
    let mut work = vec![(0usize, 0u32)];
    while let Some((at, d)) = work.pop() {
        if d >= max_depth || (d > 0 && rng.unit() < 0.3) {
            nodes[at] = Node::Leaf {
                path_length: (d as f64 + average_path_length(1.0 + rng.below(20) as f64)) as f32,
            };
            continue;
        }
        let (l, r) = (nodes.len(), nodes.len() + 1);
        nodes.push(Node::Leaf { path_length: 0.0 });
        nodes.push(Node::Leaf { path_length: 0.0 });
        let (left, right) = if rng.unit() < 0.5 { (l, r) } else { (r, l) };
        nodes[at] = Node::Split {
            feature: rng.below(f) as u32,
            threshold: (rng.normal() * 2.0) as f32,
            left: left as u32,
            right: right as u32,
        };
        work.push((l, d + 1));
        work.push((r, d + 1));
    }
    nodes
}

fn random_rows(rng: &mut Rng, rows: usize, f: usize, with_bad: bool) -> Vec<f32> {
    (0..rows * f)
        .map(|_| {
            let u = rng.unit();
            if with_bad && u < 0.03 {
                f32::NAN
            } else if with_bad && u < 0.04 {
                if u < 0.035 {
                    f32::INFINITY
                } else {
                    f32::NEG_INFINITY
                }
            } else {
                (rng.normal() * 2.5) as f32
            }
        })
        .collect()
}

/// A scorer for every available path and every way the vector paths read values.
fn scorers() -> Vec<Scorer> {
    Isa::under_test()
        .into_iter()
        .flat_map(|isa| Fetch::ALL.map(|fetch| Scorer::with_fetch(isa, fetch).expect("available")))
        .collect()
}

/// Names a scorer in a failure message.
fn name(s: &Scorer) -> String {
    format!("{} ({})", s.isa(), s.fetch().name())
}

fn close(got: f32, want: f64) -> bool {
    (got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0)
}

#[test]
fn every_path_matches_the_oracle_over_random_forests() {
    let mut rng = Rng(11);
    for case in 0..52 {
        // Now and then more features than the AVX-512 path takes (it hands those to AVX2).
        let f = if case % 13 == 12 {
            65 + rng.below(8)
        } else {
            1 + rng.below(20)
        };
        let n_trees = 1 + rng.below(30);
        let depth = rng.below(13) as u32;
        let trees: Vec<Vec<Node>> = (0..n_trees)
            .map(|_| random_tree(&mut rng, f, depth))
            .collect();
        let forest = Forest::new(f, 256, &trees).expect("valid forest");
        // Row counts around the 8- and 16-lane widths and the tile size.
        let rows = [0, 1, 7, 8, 9, 15, 16, 17, 33, 63, 511, 512, 513, 1100][case % 14];
        let x = random_rows(&mut rng, rows, f, true);
        for scorer in scorers() {
            let mut got = vec![0.0f32; rows];
            scorer.path_sums(&forest, &x, &mut got);
            for (i, row) in x.chunks_exact(f).enumerate() {
                let want = oracle::path_sum(&trees, row);
                assert!(
                    close(got[i], want),
                    "{} case {case} row {i}: {} want {want}",
                    name(&scorer),
                    got[i]
                );
            }
        }
    }
}

#[test]
fn the_paths_agree_bit_for_bit() {
    let mut rng = Rng(12);
    // Every width of column selection (2, 4, 8 and 16 columns), and one that gathers.
    for f in [2, 3, 8, 13, 16, 17] {
        let trees: Vec<Vec<Node>> = (0..100).map(|_| random_tree(&mut rng, f, 8)).collect();
        let forest = Forest::new(f, 256, &trees).expect("valid forest");
        let x = random_rows(&mut rng, 2001, f, true);
        let run = |scorer: Scorer| {
            let mut out = vec![0.0f32; 2001];
            scorer.score(&forest, &x, &mut out);
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let reference = run(Scorer::new(Isa::Scalar, &forest).expect("available"));
        for scorer in scorers() {
            assert!(
                run(scorer) == reference,
                "{} differs from scalar with {f} features",
                name(&scorer)
            );
        }
    }
}

#[test]
fn nan_goes_right_at_every_split() {
    // Root tests feature 0 at 0.0: left leaf h=1, right leaf h=2.
    let tree = vec![
        Node::Split {
            feature: 0,
            threshold: 0.0,
            left: 1,
            right: 2,
        },
        Node::Leaf { path_length: 1.0 },
        Node::Leaf { path_length: 2.0 },
    ];
    let forest = Forest::new(1, 2, &[tree]).expect("valid");
    for isa in Isa::under_test() {
        let x: Vec<f32> = [
            -1.0,
            f32::NAN,
            1.0,
            0.0,
            f32::NEG_INFINITY,
            f32::INFINITY,
            0.0,
            0.0,
            0.0,
        ]
        .to_vec();
        for fetch in Fetch::ALL {
            let mut out = vec![0.0; x.len()];
            Scorer::with_fetch(isa, fetch)
                .expect("available")
                .path_sums(&forest, &x, &mut out);
            assert_eq!(
                out,
                [1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0],
                "{isa} ({})",
                fetch.name()
            );
        }
    }
}

#[test]
fn flattening_round_trips_and_bad_forests_are_refused() {
    let mut rng = Rng(13);
    let trees: Vec<Vec<Node>> = (0..5).map(|_| random_tree(&mut rng, 3, 6)).collect();
    let forest = Forest::new(3, 64, &trees).expect("valid");
    let again = Forest::new(3, 64, &forest.trees()).expect("valid");
    assert!(forest == again, "flattening does not round-trip");
    let leaf = Node::Leaf { path_length: 1.0 };
    let split = |feature, left, right| Node::Split {
        feature,
        threshold: 0.5,
        left,
        right,
    };
    for (trees, why) in [
        (vec![], "at least one tree"),
        (vec![vec![]], "no nodes"),
        (
            vec![vec![split(3, 1, 2), leaf.clone(), leaf.clone()]],
            "feature 3",
        ),
        (
            vec![vec![split(0, 1, 5), leaf.clone(), leaf.clone()]],
            "out of order or range",
        ),
        (vec![vec![split(0, 1, 1), leaf.clone()]], "one tree"),
        (vec![vec![leaf.clone(), leaf.clone()]], "one tree"),
        (
            vec![vec![Node::Leaf {
                path_length: f32::NAN,
            }]],
            "path length",
        ),
    ] {
        let e = Forest::new(3, 64, &trees).expect_err(why);
        assert!(e.0.contains(why), "{e} lacks {why}");
    }
}

#[test]
fn training_is_deterministic_and_isolates_outliers() {
    let mut rng = Rng(14);
    let f = 4;
    // Normal rows: feature 1 follows feature 0 (a correlated pair, like pressure and flow).
    let x: Vec<f32> = (0..3000)
        .flat_map(|_| {
            let a = rng.normal();
            [
                a,
                -2.0 * a + 0.1 * rng.normal(),
                rng.normal(),
                5.0 + rng.normal(),
            ]
        })
        .map(|v| v as f32)
        .collect();
    let p = TrainParams {
        trees: 100,
        sample_size: 256,
        seed: 42,
    };
    let forest = train(&x, f, &p).expect("trains");
    assert!(
        forest == train(&x, f, &p).expect("trains"),
        "same seed, same forest"
    );
    assert!(forest != train(&x, f, &TrainParams { seed: 43, ..p }).expect("trains"));
    assert_eq!((forest.n_trees(), forest.sample_size()), (100, 256));
    // Height limit ceil(log2 256) = 8.
    assert!(forest.depth.iter().all(|&d| d <= 8));
    let scorer = Scorer::new(Isa::best(), &forest).expect("available");
    let mut normal = vec![0.0; 3000];
    scorer.score(&forest, &x, &mut normal);
    let mean = normal.iter().sum::<f32>() / 3000.0;
    // A point off the correlation (pressure up, flow not down) and a far point.
    let odd = [1.5f32, 3.0, 0.0, 5.0, 8.0, 8.0, 8.0, -3.0];
    let mut s = [0.0; 2];
    scorer.score(&forest, &odd, &mut s);
    assert!((0.35..0.55).contains(&mean), "normal mean {mean}");
    assert!(s[0] > mean + 0.1 && s[1] > 0.7, "{s:?} vs {mean}");
}

#[test]
fn training_refuses_bad_input() {
    let p = TrainParams::default();
    assert!(train(&[1.0, 2.0, 3.0], 2, &p).is_err());
    assert!(train(&[1.0, 2.0], 2, &p).is_err());
    assert!(train(&[1.0, f32::NAN, 3.0, 4.0], 2, &p).is_err());
    assert!(train(&[1.0, 2.0, 3.0, 4.0], 2, &TrainParams { trees: 0, ..p }).is_err());
    // Constant data: every tree is one leaf, every row scores the same.
    let forest = train(&[1.0; 20], 2, &p).expect("trains");
    assert_eq!(forest.n_nodes(), 100);
}

#[test]
fn median_threshold_is_the_median_of_a_features_splits() {
    let mut rng = Rng(21);
    let f = 6;
    let trees: Vec<Vec<Node>> = (0..20).map(|_| random_tree(&mut rng, f, 6)).collect();
    let forest = Forest::new(f, 256, &trees).expect("valid forest");
    for j in 0..f {
        let mut t: Vec<f32> = trees
            .iter()
            .flatten()
            .filter_map(|n| match *n {
                Node::Split {
                    feature, threshold, ..
                } if feature as usize == j => Some(threshold),
                _ => None,
            })
            .collect();
        t.sort_by(f32::total_cmp);
        assert_eq!(
            forest.median_threshold(j),
            t.get(t.len() / 2).copied(),
            "feature {j}"
        );
    }
    // A feature no tree splits on has none.
    let stump = vec![Node::Leaf { path_length: 1.0 }];
    let forest = Forest::new(2, 2, &[stump]).expect("valid");
    assert_eq!(forest.median_threshold(1), None);
}

#[test]
fn the_read_is_chosen_only_where_the_select_read_serves() {
    let mut rng = Rng(5);
    let forest_of = |rng: &mut Rng, f: usize, depth: u32| {
        let trees: Vec<Vec<Node>> = (0..20).map(|_| random_tree(rng, f, depth)).collect();
        Forest::new(f, 256, &trees).expect("valid forest")
    };
    let narrow = forest_of(&mut rng, 8, 8);
    let middle = forest_of(&mut rng, 12, 8);
    let wide = forest_of(&mut rng, 17, 8);
    let deep = forest_of(&mut rng, 8, super::HEAP_MAX_DEPTH + 4);
    assert!(
        deep.depth.iter().any(|&d| d > super::HEAP_MAX_DEPTH),
        "some tree too deep for heap order"
    );
    let serves = |isa, forest| Fetch::select_serves(isa, forest);
    assert!(serves(Isa::Avx512, &narrow) && serves(Isa::Avx2, &narrow));
    assert!(serves(Isa::Avx512, &middle) && !serves(Isa::Avx2, &middle));
    for forest in [&narrow, &middle, &wide, &deep] {
        assert!(!serves(Isa::Scalar, forest));
    }
    for isa in Isa::ALL {
        assert!(!serves(isa, &wide) && !serves(isa, &deep), "{isa}");
        for forest in [&wide, &deep] {
            assert_eq!(Fetch::fastest_for(isa, forest), Fetch::Gather, "{isa}");
        }
    }
    assert_eq!(Fetch::fastest_for(Isa::Avx2, &middle), Fetch::Gather);
    // The scorer a forest gets reads the way timing chose (the scalar path: gather, which it
    // ignores), and scores as the scalar path does.
    for forest in [&narrow, &middle] {
        let f = forest.n_features();
        let x = random_rows(&mut rng, 1000, f, true);
        let sums = |scorer: Scorer| {
            let mut out = vec![0.0f32; 1000];
            scorer.path_sums(forest, &x, &mut out);
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let reference = sums(Scorer::new(Isa::Scalar, forest).expect("available"));
        for isa in Isa::under_test() {
            let scorer = Scorer::new(isa, forest).expect("available");
            if !serves(isa, forest) {
                assert_eq!(scorer.fetch(), Fetch::Gather, "{isa}");
            }
            assert!(
                sums(scorer) == reference,
                "{isa} ({})",
                scorer.fetch().name()
            );
        }
    }
}

#[test]
fn probe_rows_go_both_ways_at_every_split_they_can() {
    let mut rng = Rng(9);
    let trees: Vec<Vec<Node>> = (0..30).map(|_| random_tree(&mut rng, 5, 8)).collect();
    let forest = Forest::new(5, 256, &trees).expect("valid forest");
    let x = super::probe_rows(&forest, 2 * super::TILE);
    assert_eq!(x.len(), 2 * super::TILE * 5);
    assert!(x.iter().all(|v| v.is_finite()));
    // At every tree's root, some rows go left and some go right.
    for &root in &forest.root {
        let (f, t) = (
            forest.feature[root as usize] as usize,
            forest.threshold[root as usize],
        );
        let left = x.chunks_exact(5).filter(|row| row[f] <= t).count();
        assert!(
            left > 0 && left < 2 * super::TILE,
            "{left} of {} rows go left at a root",
            2 * super::TILE
        );
    }
}
