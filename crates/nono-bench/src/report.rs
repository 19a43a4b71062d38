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
}

impl Row {
    /// A row with both columns.
    pub fn pair(
        metric: impl Into<String>,
        unit: &'static str,
        direct: f64,
        proxy: Option<f64>,
    ) -> Row {
        Row {
            metric: metric.into(),
            unit,
            direct: Some(direct),
            proxy,
        }
    }

    /// A proxy-only row (memory, added latency).
    pub fn proxy_only(metric: impl Into<String>, unit: &'static str, proxy: f64) -> Row {
        Row {
            metric: metric.into(),
            unit,
            direct: None,
            proxy: Some(proxy),
        }
    }

    /// `proxy / direct`, when both exist and direct is non-zero.
    pub fn ratio(&self) -> Option<f64> {
        match (self.direct, self.proxy) {
            (Some(d), Some(p)) if d != 0.0 => Some(p / d),
            _ => None,
        }
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
    let mut out = format!(
        "{:<width$}  {:>14}  {:>14}  {:>12}\n",
        "metric", "direct", "proxy", "proxy/direct"
    );
    for row in rows {
        let name = format!("{} ({})", row.metric, row.unit);
        out.push_str(&format!(
            "{:<width$}  {:>14}  {:>14}  {:>12}\n",
            name,
            cell(row.direct),
            cell(row.proxy),
            ratio(row)
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
            })
        })
        .collect();
    json!({ "config": config, "results": rows })
}
