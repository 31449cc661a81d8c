//! Instruction sets the kernels are written for, and the choice among them.
//!
//! The choice is a value: once you hold an [`Isa`] that [`Isa::is_available`] said yes to, calling a
//! kernel built for it is safe. Kernel constructors (e.g. [`crate::zscore::ZScore::new`]) refuse an
//! `Isa` this CPU lacks, so the unsafe dispatch inside them rests on that one check.
//!
//! [`choose`] is the one place the choice is made for a run: `VIGIL_ISA` (read here and nowhere
//! else), then the configured name, then the fastest path this CPU has.

use std::fmt;
use std::sync::{Once, OnceLock};

/// An instruction-set path of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust. Always available; the production fallback.
    Scalar,
    /// x86_64 AVX2 + FMA, 8 f32 lanes.
    Avx2,
    /// x86_64 AVX-512F, 16 f32 lanes with mask registers.
    Avx512,
}

impl Isa {
    /// Every path, fastest first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Scalar];

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => avx2_available(),
            Isa::Avx512 => avx512_available(),
        }
    }

    /// The paths this CPU can run, fastest first. Tests and benches run each of them.
    pub fn available() -> Vec<Isa> {
        Isa::ALL
            .into_iter()
            .filter(|isa| isa.is_available())
            .collect()
    }

    /// The fastest available path.
    pub fn best() -> Isa {
        Isa::ALL
            .into_iter()
            .find(|isa| isa.is_available())
            .unwrap_or(Isa::Scalar)
    }

    /// The name used in logs, config and `VIGIL_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a name as [`Isa::name`] prints it (`auto` is not an `Isa`: callers map it to [`Isa::best`]).
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name() == name)
    }

    /// The paths tests run against their oracles: every available one. The paths this CPU lacks
    /// are named once per process on stderr as not tested, so a run on a machine without, say,
    /// AVX-512 says so instead of passing as if it had covered it.
    pub fn under_test() -> Vec<Isa> {
        static SAID: Once = Once::new();
        let missing: Vec<&str> = Isa::ALL
            .into_iter()
            .filter(|isa| !isa.is_available())
            .map(Isa::name)
            .collect();
        if !missing.is_empty() {
            SAID.call_once(|| {
                use std::io::Write as _;
                // Straight to stderr: the test harness captures `eprintln!` of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "not tested: the {} kernel path{} (this CPU lacks {}); tested: {}",
                    missing.join(", "),
                    if missing.len() > 1 { "s" } else { "" },
                    if missing.len() > 1 { "them" } else { "it" },
                    Isa::available()
                        .iter()
                        .map(|i| i.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            });
        }
        Isa::available()
    }
}

/// What decided a run's instruction set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The fastest path this CPU has (nothing forced one).
    Auto,
    /// The `VIGIL_ISA` environment variable.
    Env,
    /// The configuration (`pipeline.isa`).
    Config,
}

/// A run's instruction set and why it was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub isa: Isa,
    pub reason: Reason,
}

impl Choice {
    /// Words for a log line, e.g. `avx2 (forced by VIGIL_ISA)`.
    pub fn describe(&self) -> String {
        let why = match self.reason {
            Reason::Auto if self.isa == Isa::Scalar => {
                "this CPU has no vector path the kernels use: the portable path"
            }
            Reason::Auto => "chosen at run time; VIGIL_ISA=scalar forces the portable path",
            Reason::Env => "forced by VIGIL_ISA",
            Reason::Config => "set by pipeline.isa",
        };
        format!("{} ({why})", self.isa)
    }
}

/// Why a named instruction set cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IsaError {
    /// Not a name [`Isa::from_name`] knows (nor `auto`).
    Unknown { name: String, from_env: bool },
    /// Known, but this CPU cannot run it.
    Unavailable { isa: Isa, from_env: bool },
}

impl fmt::Display for IsaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = |env: bool| if env { "VIGIL_ISA" } else { "pipeline.isa" };
        match self {
            IsaError::Unknown { name, from_env } => write!(
                f,
                "{}: unknown instruction set {name:?} (auto, {})",
                from(*from_env),
                Isa::ALL.map(Isa::name).join(", ")
            ),
            IsaError::Unavailable { isa, from_env } => write!(
                f,
                "{}: instruction set {isa} is not available on this CPU",
                from(*from_env)
            ),
        }
    }
}

impl std::error::Error for IsaError {}

/// `VIGIL_ISA`, read once per process (empty counts as unset).
fn env_override() -> Option<&'static str> {
    static ENV: OnceLock<Option<String>> = OnceLock::new();
    ENV.get_or_init(|| std::env::var("VIGIL_ISA").ok().filter(|v| !v.is_empty()))
        .as_deref()
}

/// The instruction set of a run: `VIGIL_ISA` if set, else `configured` (`pipeline.isa`), else
/// `auto`; `auto` is the fastest path this CPU has.
pub fn choose(configured: Option<&str>) -> Result<Choice, IsaError> {
    let (name, reason) = match (env_override(), configured) {
        (Some(env), _) => (env, Reason::Env),
        (None, Some(c)) => (c, Reason::Config),
        (None, None) => ("auto", Reason::Auto),
    };
    let from_env = reason == Reason::Env;
    if name == "auto" {
        return Ok(Choice {
            isa: Isa::best(),
            reason: Reason::Auto,
        });
    }
    match Isa::from_name(name) {
        Some(isa) if isa.is_available() => Ok(Choice { isa, reason }),
        Some(isa) => Err(IsaError::Unavailable { isa, from_env }),
        None => Err(IsaError::Unknown {
            name: name.to_string(),
            from_env,
        }),
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_available() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn avx512_available() -> bool {
    is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512_available() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
        }
        assert_eq!(Isa::from_name("sse9"), None);
    }

    #[test]
    fn a_configured_name_is_checked() {
        // (VIGIL_ISA is unset under `cargo test` unless the caller forces a path.)
        if env_override().is_some() {
            return;
        }
        assert_eq!(
            choose(Some("scalar")),
            Ok(Choice {
                isa: Isa::Scalar,
                reason: Reason::Config
            })
        );
        assert_eq!(choose(None).map(|c| c.isa), Ok(Isa::best()));
        let e = choose(Some("sse9")).expect_err("unknown");
        assert!(e
            .to_string()
            .contains("unknown instruction set \"sse9\" (auto, avx512, avx2, scalar)"));
    }

    #[test]
    fn scalar_is_always_available_and_best_is_available() {
        assert!(Isa::available().contains(&Isa::Scalar));
        assert!(Isa::best().is_available());
    }
}
