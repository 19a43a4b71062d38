//! The results table and its JSON form.

use serde_json::{json, Value};

/// One measured quantity, directly and through the proxy.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured.
    pub metric: String,
    /// Unit of `direct` and `proxy`.
    pub unit: &'static str,
    /// Without the proxy, if measured.
    pub direct: Option<f64>,
    /// Through the proxy, if measured.
    pub proxy: Option<f64>,
    /// Per-round `proxy / direct` ratios, when measured in paired rounds.
    pub ratios: Vec<f64>,
    /// Per-round values (direct, proxy), when measured in paired rounds.
    pub samples: (Vec<f64>, Vec<f64>),
}

impl Row {
    /// A row from paired rounds (round i: `direct[i]`, then `proxy[i]`): the columns are
    /// medians and the ratio is the median of the per-round ratios, so drift in a noisy
    /// machine between rounds cancels out.
    pub fn rounds(
        metric: impl Into<String>,
        unit: &'static str,
        direct: &[f64],
        proxy: &[f64],
    ) -> Row {
        let ratios = direct
            .iter()
            .zip(proxy)
            .filter(|(d, _)| **d != 0.0)
            .map(|(d, p)| p / d)
            .collect();
        Row {
            metric: metric.into(),
            unit,
            direct: median(direct),
            proxy: median(proxy),
            ratios,
            samples: (direct.to_vec(), proxy.to_vec()),
        }
    }

    /// A proxy-only row (memory, added latency).
    pub fn proxy_only(metric: impl Into<String>, unit: &'static str, proxy: f64) -> Row {
        Row {
            metric: metric.into(),
            unit,
            direct: None,
            proxy: Some(proxy),
            ratios: Vec::new(),
            samples: (Vec::new(), Vec::new()),
        }
    }

    /// The median per-round ratio, else `proxy / direct` when both exist and direct is
    /// non-zero.
    pub fn ratio(&self) -> Option<f64> {
        if let Some(m) = median(&self.ratios) {
            return Some(m);
        }
        match (self.direct, self.proxy) {
            (Some(d), Some(p)) if d != 0.0 => Some(p / d),
            _ => None,
        }
    }
}

impl Row {
    /// The smallest and largest per-round ratio, when there was more than one round.
    pub fn ratio_range(&self) -> Option<(f64, f64)> {
        if self.ratios.len() < 2 {
            return None;
        }
        let min = self.ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self
            .ratios
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        Some((min, max))
    }
}

/// The median of `values` (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    // The two middle elements; the same one for an odd count, none for an empty slice.
    let n = v.len();
    match (v.get(n.wrapping_sub(1) / 2), v.get(n / 2)) {
        (Some(a), Some(b)) => Some((a + b) / 2.0),
        _ => None,
    }
}

/// Renders the rows as an aligned text table.
pub fn table(rows: &[Row]) -> String {
    let cell = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    let ratio = |r: &Row| {
        r.ratio()
            .map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
    };
    let width = rows
        .iter()
        .map(|r| r.metric.len() + r.unit.len() + 3)
        .max()
        .unwrap_or(10);
    let range = |r: &Row| {
        r.ratio_range()
            .map_or_else(String::new, |(lo, hi)| format!("{lo:.3}-{hi:.3}"))
    };
    let mut out = format!(
        "{:<width$}  {:>14}  {:>14}  {:>12}  {:>13}\n",
        "metric", "direct", "proxy", "proxy/direct", "round range"
    );
    for row in rows {
        let name = format!("{} ({})", row.metric, row.unit);
        out.push_str(&format!(
            "{:<width$}  {:>14}  {:>14}  {:>12}  {:>13}\n",
            name,
            cell(row.direct),
            cell(row.proxy),
            ratio(row),
            range(row)
        ));
    }
    out
}

/// Renders the rows, plus the run's configuration, as JSON.
pub fn to_json(config: Value, rows: &[Row]) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "metric": r.metric,
                "unit": r.unit,
                "direct": r.direct,
                "proxy": r.proxy,
                "ratio": r.ratio(),
                "round_ratios": r.ratios,
                "round_direct": r.samples.0,
                "round_proxy": r.samples.1,
            })
        })
        .collect();
    json!({ "config": config, "results": rows })
}

/// One quantity measured directly, through a plain tunnel and through interception, in paired
/// rounds (round i: `direct[i]`, `tunnel[i]`, `intercept[i]`; any of them may be empty).
#[derive(Clone, Debug)]
pub struct TriRow {
    /// What was measured.
    pub metric: String,
    /// Unit of the values.
    pub unit: &'static str,
    /// Per-round values without the proxy.
    pub direct: Vec<f64>,
    /// Per-round values through a CONNECT tunnel (TLS end to end).
    pub tunnel: Vec<f64>,
    /// Per-round values through an intercepted CONNECT.
    pub intercept: Vec<f64>,
}

/// The median of the per-round ratios `num[i] / den[i]` (rounds with `den[i] == 0` skipped).
pub fn paired_ratio(num: &[f64], den: &[f64]) -> Option<f64> {
    let ratios: Vec<f64> = num
        .iter()
        .zip(den)
        .filter(|(_, d)| **d != 0.0)
        .map(|(n, d)| n / d)
        .collect();
    median(&ratios)
}

/// Renders three-route rows: medians per route and the median paired ratios.
pub fn tri_table(rows: &[TriRow]) -> String {
    // CPU seconds per GiB are small numbers: keep three decimals below 10.
    let cell = |v: &[f64]| {
        median(v).map_or_else(
            || "-".to_string(),
            |v| {
                if v.abs() < 10.0 {
                    format!("{v:.3}")
                } else {
                    format!("{v:.1}")
                }
            },
        )
    };
    let ratio = |n: &[f64], d: &[f64]| {
        paired_ratio(n, d).map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
    };
    let width = rows
        .iter()
        .map(|r| r.metric.len() + r.unit.len() + 3)
        .max()
        .unwrap_or(10);
    let mut out = format!(
        "{:<width$}  {:>10}  {:>10}  {:>10}  {:>8}  {:>8}  {:>8}\n",
        "metric", "direct", "tunnel", "intercept", "tun/dir", "int/dir", "int/tun"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<width$}  {:>10}  {:>10}  {:>10}  {:>8}  {:>8}  {:>8}\n",
            format!("{} ({})", r.metric, r.unit),
            cell(&r.direct),
            cell(&r.tunnel),
            cell(&r.intercept),
            ratio(&r.tunnel, &r.direct),
            ratio(&r.intercept, &r.direct),
            ratio(&r.intercept, &r.tunnel),
        ));
    }
    out
}

/// Renders three-route rows, plus the run's configuration, as JSON.
pub fn tri_json(config: Value, rows: &[TriRow]) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "metric": r.metric,
                "unit": r.unit,
                "direct": median(&r.direct),
                "tunnel": median(&r.tunnel),
                "intercept": median(&r.intercept),
                "tunnel_over_direct": paired_ratio(&r.tunnel, &r.direct),
                "intercept_over_direct": paired_ratio(&r.intercept, &r.direct),
                "intercept_over_tunnel": paired_ratio(&r.intercept, &r.tunnel),
                "round_direct": r.direct,
                "round_tunnel": r.tunnel,
                "round_intercept": r.intercept,
            })
        })
        .collect();
    json!({ "config": config, "results": rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_even_and_empty_samples() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn round_rows_use_the_median_of_paired_ratios() {
        // Round 2 ran on a slower machine for both routes: its ratio is still 0.5.
        let row = Row::rounds("bulk", "MiB/s", &[100.0, 10.0, 100.0], &[50.0, 5.0, 90.0]);
        assert_eq!(row.ratio(), Some(0.5));
        assert_eq!(row.ratio_range(), Some((0.5, 0.9)));
        assert_eq!(row.direct, Some(100.0));
    }

    #[test]
    fn paired_ratios_skip_zero_denominators() {
        assert_eq!(paired_ratio(&[2.0, 9.0, 3.0], &[1.0, 0.0, 1.0]), Some(2.5));
        assert_eq!(paired_ratio(&[1.0], &[]), None);
    }
}
