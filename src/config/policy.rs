//! Alert policies (hysteresis) and how a detector's policy inherits: its own `[detectors.alerts]`
//! over `[alerts]` over the kind's defaults.

use super::raw::RawPolicy;
use super::ConfigError;

/// Validated alert policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyConfig {
    pub open: f32,
    pub open_after: u32,
    pub close: f32,
    pub close_after: u32,
    /// Readings after a close during which the channel does not open again.
    pub holdoff: u32,
}

/// The built-in alert policy.
pub const DEFAULT_POLICY: PolicyConfig = PolicyConfig {
    open: 6.0,
    open_after: 3,
    close: 3.0,
    close_after: 10,
    holdoff: 0,
};

/// The built-in policy of likelihood detectors: the likelihood is already smoothed and fades by
/// itself, so one record above 3 opens an alert, which closes after 30 below 1.5.
pub const LIKELIHOOD_POLICY: PolicyConfig = PolicyConfig {
    open: 3.0,
    open_after: 1,
    close: 1.5,
    close_after: 30,
    holdoff: 0,
};

/// The built-in policy of sequence detectors (the default detector): the likelihood's, opening
/// after 3 records above 4. A single surprising reading of a noisy series is not yet an episode;
/// 4 rather than NAB's best 3 quarters the false alerts on a plant of steady noisy sensors (the
/// trade-off is measured on NAB, SKAB and the bundled recording: see the README's evaluation
/// table).
pub const SEQUENCE_POLICY: PolicyConfig = PolicyConfig {
    open: 4.0,
    open_after: 3,
    ..LIKELIHOOD_POLICY
};

/// The built-in policy of baseline detectors: the deviation is already smoothed, so one record
/// at 2.5 tolerances opens an alert, and one back below 1.9 closes it (chosen on SKAB's
/// development subset and the bundled pump recording: see the README's evaluation table).
pub const BASELINE_POLICY: PolicyConfig = PolicyConfig {
    open: 2.5,
    open_after: 1,
    close: 1.9,
    close_after: 1,
    holdoff: 0,
};

/// Where a detector's policy starts before `[alerts]` and its own fields apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PolicyBase {
    /// [`DEFAULT_POLICY`], whose thresholds `[alerts]` may change.
    ZScore,
    /// [`LIKELIHOOD_POLICY`], whose thresholds `[alerts]` may change.
    Likelihood,
    /// [`SEQUENCE_POLICY`], whose thresholds `[alerts]` may change.
    Sequence,
    /// [`BASELINE_POLICY`], whose thresholds `[alerts]` may change.
    Baseline,
    /// A model's threshold: open at `open`, close below `close`, after 3 and 10 records. Only
    /// `[alerts]`'s counts apply (its thresholds are in z-score units).
    Threshold { open: f32, close: f32 },
}

impl PolicyConfig {
    /// `raw` over `inherit`, checked; `what` names it in errors.
    pub fn from_raw(
        raw: &RawPolicy,
        inherit: &PolicyConfig,
        what: &str,
    ) -> Result<PolicyConfig, ConfigError> {
        let p = PolicyConfig {
            open: raw.open.unwrap_or(inherit.open),
            open_after: raw.open_after.unwrap_or(inherit.open_after),
            close: raw.close.unwrap_or(inherit.close),
            close_after: raw.close_after.unwrap_or(inherit.close_after),
            holdoff: raw.holdoff.unwrap_or(inherit.holdoff),
        };
        if !(p.open.is_finite() && p.close.is_finite() && p.close >= 0.0 && p.close < p.open) {
            return Err(ConfigError::invalid(format!(
                "{what}: need 0 <= close < open, got open {} close {}",
                p.open, p.close
            )));
        }
        if p.open_after == 0
            || p.close_after == 0
            || p.open_after > 1_000_000
            || p.close_after > 1_000_000
            || p.holdoff > 100_000_000
        {
            return Err(ConfigError::invalid(format!(
                "{what}: open_after and close_after must be between 1 and 1e6, holdoff at most 1e8"
            )));
        }
        Ok(p)
    }

    /// The policy of detector `name`: `own` over `alerts` (`[alerts]`) over `base`.
    pub fn resolve(
        base: PolicyBase,
        alerts: &RawPolicy,
        own: &RawPolicy,
        name: &str,
    ) -> Result<PolicyConfig, ConfigError> {
        let inherit = match base {
            PolicyBase::ZScore => PolicyConfig::from_raw(alerts, &DEFAULT_POLICY, "[alerts]")?,
            PolicyBase::Likelihood => PolicyConfig::from_raw(
                alerts,
                &LIKELIHOOD_POLICY,
                &format!("[alerts] for detector {name}"),
            )?,
            PolicyBase::Sequence => PolicyConfig::from_raw(
                alerts,
                &SEQUENCE_POLICY,
                &format!("[alerts] for detector {name}"),
            )?,
            PolicyBase::Baseline => PolicyConfig::from_raw(
                alerts,
                &BASELINE_POLICY,
                &format!("[alerts] for detector {name}"),
            )?,
            PolicyBase::Threshold { open, close } => {
                let counts = RawPolicy {
                    open: None,
                    close: None,
                    ..alerts.clone()
                };
                let own = PolicyConfig {
                    open,
                    open_after: 3,
                    close,
                    close_after: 10,
                    holdoff: 0,
                };
                PolicyConfig::from_raw(&counts, &own, &format!("[alerts] for detector {name}"))?
            }
        };
        PolicyConfig::from_raw(own, &inherit, &format!("detector {name}"))
    }
}
